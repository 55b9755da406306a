"""Idempotency keys: the first answer to a keyed POST, per caller, for 24 hours."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import IdempotentRequest

KEPT_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class Claim:
    """`new`: go ahead (the key is now running); else the earlier request as it stands."""

    new: bool
    earlier: IdempotentRequest | None = None


async def claim(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, fingerprint: str, now: datetime
) -> Claim:
    async with sessions.begin() as session:
        await session.execute(
            delete(IdempotentRequest).where(
                IdempotentRequest.caller == caller,
                IdempotentRequest.key == key,
                IdempotentRequest.created_at < now - KEPT_FOR,
            )
        )
        earlier = (
            await session.execute(
                select(IdempotentRequest).where(IdempotentRequest.caller == caller, IdempotentRequest.key == key)
            )
        ).scalar_one_or_none()
        if earlier is not None:
            return Claim(new=False, earlier=earlier)
        session.add(
            IdempotentRequest(caller=caller, key=key, fingerprint=fingerprint, status="running", created_at=now)
        )
    return Claim(new=True)


async def claim_or_race(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, fingerprint: str, now: datetime
) -> Claim:
    """As `claim`; a request with the same key that claimed it a moment earlier is reported as running."""
    try:
        return await claim(sessions, caller=caller, key=key, fingerprint=fingerprint, now=now)
    except IntegrityError:
        return await claim(sessions, caller=caller, key=key, fingerprint=fingerprint, now=now)


async def remember(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, status: int, body: bytes, content_type: str
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(IdempotentRequest)
            .where(IdempotentRequest.caller == caller, IdempotentRequest.key == key)
            .values(status="done", response_status=status, response_body=body, content_type=content_type)
        )


async def forget(sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str) -> None:
    """The request failed on our side: a retry with the same key may run again."""
    async with sessions.begin() as session:
        await session.execute(
            delete(IdempotentRequest).where(IdempotentRequest.caller == caller, IdempotentRequest.key == key)
        )
