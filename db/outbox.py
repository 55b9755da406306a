"""The email outbox: the state of each message, so that none is sent twice and none is lost."""

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboxEmail
from rules.errors import NotFound


async def load(sessions: async_sessionmaker[AsyncSession], email_id: uuid.UUID) -> OutboxEmail:
    async with sessions() as session:
        email = await session.get(OutboxEmail, email_id)
        if email is None:
            raise NotFound(f"outbox email {email_id} does not exist")
        return email


async def settle(
    sessions: async_sessionmaker[AsyncSession],
    email_id: uuid.UUID,
    *,
    status: str,
    at: datetime,
    error: str | None = None,
) -> None:
    """Record the outcome of one attempt; `pending` keeps the message for the next attempt."""
    values: dict[str, object] = {"attempts": OutboxEmail.attempts + 1, "status": status, "last_error": error}
    if status == "sent":
        values["sent_at"] = at
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxEmail).where(OutboxEmail.id == email_id, OutboxEmail.status == "pending").values(**values)
        )
