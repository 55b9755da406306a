"""Idempotency keys: the first answer to a keyed POST, per caller, for 24 hours.

A key is `running` while its request runs, `done` with the answer once it has one, and `failed` (its fingerprint
kept) when the request failed on our side (an answer of 500 or above): a retry of the same request runs again,
another request with that key is still refused. A key left `running` by a process that died, or that could not
record the failure (the database away), is taken over by a retry once `ABANDONED_AFTER` has passed since that
attempt began (`claimed_at`). A key is kept for `KEPT_FOR` from its first use (`created_at`), which also tells
one use of a key from a use of the same key after it was forgotten.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import IdempotentRequest
from db.types import affected

KEPT_FOR = timedelta(hours=24)
# Far longer than any request runs (an order request answers within 30 s): a claim this old lost its request.
ABANDONED_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class Claim:
    """`new`: go ahead (the key is now running); else the earlier request as it stands."""

    new: bool
    earlier: IdempotentRequest | None = None
    first_used: datetime | None = None  # when `new`: the key's first use, the same for every retry within its day
    claimed_at: datetime | None = None  # when `new`: this attempt's claim, which alone may record its outcome


def _retryable(fingerprint: str, now: datetime) -> ColumnElement[bool]:
    """The same request again, after the first failed on our side or lost its claim."""
    return and_(
        IdempotentRequest.fingerprint == fingerprint,
        or_(
            IdempotentRequest.status == "failed",
            and_(
                IdempotentRequest.status == "running",
                func.coalesce(IdempotentRequest.claimed_at, IdempotentRequest.created_at) < now - ABANDONED_AFTER,
            ),
        ),
    )


async def claim(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, fingerprint: str, now: datetime
) -> Claim:
    async with sessions.begin() as session:
        mine = (IdempotentRequest.caller == caller, IdempotentRequest.key == key)
        await session.execute(delete(IdempotentRequest).where(*mine, IdempotentRequest.created_at < now - KEPT_FOR))
        # One statement takes a retryable key over: of two retries at once, one runs and the other finds it running.
        taken = await session.execute(
            update(IdempotentRequest)
            .where(*mine, _retryable(fingerprint, now))
            .values(status="running", claimed_at=now)
            .returning(IdempotentRequest.created_at)
            .execution_options(synchronize_session=False)
        )
        if (first_used := taken.scalar_one_or_none()) is not None:
            return Claim(new=True, first_used=first_used, claimed_at=now)
        earlier = (await session.execute(select(IdempotentRequest).where(*mine))).scalar_one_or_none()
        if earlier is not None:
            return Claim(new=False, earlier=earlier)
        session.add(
            IdempotentRequest(
                caller=caller, key=key, fingerprint=fingerprint, status="running", created_at=now, claimed_at=now
            )
        )
    return Claim(new=True, first_used=now, claimed_at=now)


def _held(caller: str, key: str, claimed_at: datetime) -> ColumnElement[bool]:
    """The key as this attempt claimed it: not taken over since by a retry (after ABANDONED_AFTER), whose own
    outcome is the one to keep; a stalled attempt that finishes late records nothing."""
    return and_(
        IdempotentRequest.caller == caller,
        IdempotentRequest.key == key,
        IdempotentRequest.status == "running",
        IdempotentRequest.claimed_at == claimed_at,
    )


async def claim_or_race(
    sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, fingerprint: str, now: datetime
) -> Claim:
    """As `claim`; a request with the same key that claimed it a moment earlier is reported as running."""
    try:
        return await claim(sessions, caller=caller, key=key, fingerprint=fingerprint, now=now)
    except IntegrityError:
        return await claim(sessions, caller=caller, key=key, fingerprint=fingerprint, now=now)


async def remember(
    sessions: async_sessionmaker[AsyncSession],
    *,
    caller: str,
    key: str,
    claimed_at: datetime,
    status: int,
    body: bytes,
    content_type: str,
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(IdempotentRequest)
            .where(_held(caller, key, claimed_at))
            .values(status="done", response_status=status, response_body=body, content_type=content_type)
        )


async def forget_expired(sessions: async_sessionmaker[AsyncSession], *, now: datetime) -> int:
    """Delete every key whose day is over, with its answer; how many."""
    async with sessions.begin() as session:
        forgotten = await session.execute(
            delete(IdempotentRequest).where(IdempotentRequest.created_at < now - KEPT_FOR)
        )
    return affected(forgotten)


async def fail(sessions: async_sessionmaker[AsyncSession], *, caller: str, key: str, claimed_at: datetime) -> None:
    """The request failed on our side: a retry of the same request may run again; another body is still 422."""
    async with sessions.begin() as session:
        await session.execute(update(IdempotentRequest).where(_held(caller, key, claimed_at)).values(status="failed"))
