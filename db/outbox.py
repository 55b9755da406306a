"""The email outbox: the state of each message, so that none is sent twice and none is lost.

A `pending` message is sent by one attempt at a time. The attempt claims it (`claimed_by`, `claimed_until`, on
the wall clock of the machines that send), sends it and records the outcome; a message the relay did not take
is let go for the next attempt. The transaction that writes a message claims it for the activity that wrote it,
which sends it right after (`mail.postman`). Another attempt meanwhile, a retry overlapping the first (an email
activity that a cancelled workflow stopped waiting for, a retried activity whose first attempt is still
running), finds the message held and leaves it; the claim of an attempt that died lapses after a while."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboxEmail
from db.types import affected
from rules.errors import NotFound

# How long a claim holds: the writing activity sends at once and records what became of each message (at most
# 5 + 10 seconds, `mail.postman`; it claims its messages again if it comes to send them later than it should);
# a delivery attempt sends for at most 30 seconds and ends within its 45-second timeout (`workflows.options`).
WRITER_CLAIM = timedelta(seconds=30)
DELIVERY_CLAIM = timedelta(seconds=60)

_OUTBOX = cast(Table, OutboxEmail.__table__)


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    until: datetime

    @staticmethod
    def new(lasting: timedelta) -> "Claim":
        return Claim(uuid.uuid4(), wall_clock() + lasting)


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try at one message; `pending` keeps it for the next try."""

    email_id: uuid.UUID
    status: str
    error: str | None = None


@dataclass(frozen=True)
class Held:
    """A pending message another attempt holds, and until when."""

    email_id: uuid.UUID
    until: datetime


@dataclass(frozen=True)
class Claimed:
    """What a claim took (to send now, in the order asked) and what other attempts hold; messages no longer
    pending are in neither."""

    mine: list[OutboxEmail]
    held: list[Held]


async def load(readers: async_sessionmaker[AsyncSession], email_id: uuid.UUID) -> OutboxEmail:
    """One message, read in a session of `readers` (`db.session.read_sessions`)."""
    async with readers() as session:
        email = await session.get(OutboxEmail, email_id)
        if email is None:
            raise NotFound(f"outbox email {email_id} does not exist")
        return email


async def claim(
    sessions: async_sessionmaker[AsyncSession], email_ids: Sequence[uuid.UUID], *, lasting: timedelta
) -> Claimed:
    """Claim those of `email_ids` still to send that no other attempt holds, in one transaction."""
    if not email_ids:
        return Claimed([], [])
    now = wall_clock()
    mine = Claim(uuid.uuid4(), now + lasting)
    async with sessions.begin() as session:
        await session.execute(
            update(_OUTBOX)
            .where(
                _OUTBOX.c.id.in_(email_ids),
                _OUTBOX.c.status == "pending",
                or_(_OUTBOX.c.claimed_until.is_(None), _OUTBOX.c.claimed_until <= now),
            )
            .values(claimed_by=mine.token, claimed_until=mine.until)
        )
        found = await session.execute(
            select(OutboxEmail).where(OutboxEmail.id.in_(email_ids), OutboxEmail.status == "pending")
        )
        by_id = {email.id: email for email in found.scalars()}
    pending = [by_id[email_id] for email_id in email_ids if email_id in by_id]
    return Claimed(
        mine=[email for email in pending if email.claimed_by == mine.token],
        held=[Held(email.id, email.claimed_until or now) for email in pending if email.claimed_by != mine.token],
    )


async def extend(
    sessions: async_sessionmaker[AsyncSession], emails: Sequence[OutboxEmail], *, lasting: timedelta
) -> set[uuid.UUID]:
    """Renew the caller's own claims on `emails` (still pending, claim not lapsed); the ids it still holds."""
    if not emails:
        return set()
    now = wall_clock()
    async with sessions.begin() as session:
        kept: set[uuid.UUID] = set()
        for email in emails:
            renewed = await session.execute(
                update(_OUTBOX)
                .where(
                    _OUTBOX.c.id == email.id,
                    _OUTBOX.c.status == "pending",
                    _OUTBOX.c.claimed_by == email.claimed_by,
                    _OUTBOX.c.claimed_until > now,
                )
                .values(claimed_until=now + lasting)
            )
            if affected(renewed):
                kept.add(email.id)
                email.claimed_until = now + lasting
    return kept


_SETTLE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("email_id"), _OUTBOX.c.status == "pending")
    .values(
        attempts=_OUTBOX.c.attempts + 1,
        status=bindparam("new_status"),
        last_error=bindparam("error"),
        sent_at=bindparam("sent_at"),
    )
)
# A claim is let go only by its holder: one that lapsed and was taken since belongs to the attempt that took it.
_LET_GO = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("email_id"), _OUTBOX.c.claimed_by == bindparam("claim"))
    .values(claimed_by=None, claimed_until=None)
)


async def settle_each(
    sessions: async_sessionmaker[AsyncSession],
    attempts: Sequence[Attempt],
    *,
    at: datetime,
    let_go: Sequence[OutboxEmail] = (),
) -> None:
    """Record several attempts in one transaction, and let go of the claims on `let_go`, the messages the
    caller claimed that are left pending. A message already settled (by another attempt that got there first)
    keeps its outcome."""
    rows = [
        {
            "email_id": a.email_id,
            "new_status": a.status,
            "error": a.error,
            "sent_at": at if a.status == "sent" else None,
        }
        for a in attempts
    ]
    claims = [{"email_id": email.id, "claim": email.claimed_by} for email in let_go if email.claimed_by]
    if not rows and not claims:
        return
    async with sessions.begin() as session:
        connection = await session.connection()
        if rows:
            await connection.execute(_SETTLE, rows)
        if claims:
            await connection.execute(_LET_GO, claims)
