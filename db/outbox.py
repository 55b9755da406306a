"""The email outbox: the state of each message, so that none is sent twice and none is lost."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboxEmail
from rules.errors import NotFound


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try at one message; `pending` keeps it for the next try."""

    email_id: uuid.UUID
    status: str
    error: str | None = None


async def load(readers: async_sessionmaker[AsyncSession], email_id: uuid.UUID) -> OutboxEmail:
    """One message, read in a session of `readers` (`db.session.read_sessions`)."""
    async with readers() as session:
        email = await session.get(OutboxEmail, email_id)
        if email is None:
            raise NotFound(f"outbox email {email_id} does not exist")
        return email


async def pending(readers: async_sessionmaker[AsyncSession], email_ids: Sequence[uuid.UUID]) -> list[OutboxEmail]:
    """Those of `email_ids` still to send, in the order given, read in a session of `readers`."""
    async with readers() as session:
        found = await session.execute(
            select(OutboxEmail).where(OutboxEmail.id.in_(email_ids), OutboxEmail.status == "pending")
        )
        by_id = {email.id: email for email in found.scalars()}
    return [by_id[email_id] for email_id in email_ids if email_id in by_id]


async def settle_each(sessions: async_sessionmaker[AsyncSession], attempts: Sequence[Attempt], *, at: datetime) -> None:
    """Record several attempts in one transaction. A message already settled (by another attempt that got
    there first) keeps its outcome."""
    if not attempts:
        return
    statement = (
        update(OutboxEmail)
        .where(OutboxEmail.id == bindparam("email_id"), OutboxEmail.status == "pending")
        .values(
            attempts=OutboxEmail.attempts + 1,
            status=bindparam("new_status"),
            last_error=bindparam("error"),
            sent_at=bindparam("sent_at"),
        )
    )
    rows = [
        {
            "email_id": a.email_id,
            "new_status": a.status,
            "error": a.error,
            "sent_at": at if a.status == "sent" else None,
        }
        for a in attempts
    ]
    async with sessions.begin() as session:
        await (await session.connection()).execute(statement, rows)
