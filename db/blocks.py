"""Licence blocks: created with their licences, and expired all at once (at the end of the term, or early)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Case, ColumnElement, and_, case, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import QueryableAttribute

from db import audit
from db.models import Customer, Learner, Licence, LicenceBlock
from db.types import UTCDateTime, affected
from payloads.blocks import BlockExpired, ExpireBlock
from payloads.common import Actor
from rules.errors import NotFound
from rules.licences import BlockKind, LearnerStatus, LicenceStatus


async def create_block(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    kind: BlockKind,
    quantity: int,
    starts_at: datetime,
    expires_at: datetime,
    order_id: uuid.UUID | None = None,
) -> LicenceBlock:
    """A block and its `quantity` available licences, each expiring with the block."""
    block = LicenceBlock(
        id=uuid.uuid4(),
        customer_id=customer_id,
        order_id=order_id,
        kind=kind.value,
        quantity=quantity,
        starts_at=starts_at,
        expires_at=expires_at,
        status="active",
    )
    session.add(block)
    await session.flush()
    rows = [
        {
            "id": uuid.uuid4(),
            "block_id": block.id,
            "customer_id": customer_id,
            "status": LicenceStatus.AVAILABLE.value,
            "expires_at": expires_at,
        }
        for _ in range(quantity)
    ]
    await session.execute(insert(Licence), rows)
    return block


async def create_trial_block(
    session: AsyncSession,
    *,
    customer: Customer,
    quantity: int,
    starts_at: datetime,
    expires_at: datetime,
    actor: Actor,
) -> LicenceBlock:
    """A new trial customer's licences, with its audit event (an assigned block is audited with its order)."""
    block = await create_block(
        session,
        customer_id=customer.id,
        kind=BlockKind.TRIAL,
        quantity=quantity,
        starts_at=starts_at,
        expires_at=expires_at,
    )
    await audit.record_for_customer(
        session,
        customer_id=customer.id,
        actor=actor,
        action="licence_block.created",
        subject_type="licence_block",
        subject_id=block.id,
        at=starts_at,
        details={"kind": BlockKind.TRIAL.value, "quantity": quantity, "expires_at": expires_at.isoformat()},
    )
    return block


async def expire_block(sessions: async_sessionmaker[AsyncSession], data: ExpireBlock) -> BlockExpired:
    """Expire every licence of the block and mark its learners `expired`, in one transaction. A second call
    finds the block expired and reports what the first did."""
    async with sessions.begin() as session:
        block = await session.get(LicenceBlock, data.block_id, with_for_update=True)
        if block is None:
            raise NotFound(f"licence block {data.block_id} does not exist")
        if block.status == "expired":
            return await _what_expired(session, block)
        live = (Licence.block_id == block.id, Licence.status != LicenceStatus.EXPIRED.value)
        # Lock every live licence of the block first (PostgreSQL; on SQLite the transaction holds the write lock):
        # an allocation in flight finishes (and is seen) or skips them. The rows are counted, not fetched.
        await session.execute(
            select(func.count()).select_from(select(Licence.id).where(*live).with_for_update().subquery())
        )
        # The learners' licences ended now if the block ends early (a trial's customer upgraded, an operator's early
        # expiry), not when the term was to end; ended late (after an outage), the term's end stands. The block
        # keeps the term's end (`expires_at`) beside its real one (`expired_at`).
        ended = min(data.at, block.expires_at)  # expired late (no worker, Temporal away): the term's end stands
        holders = select(Licence.learner_id).where(*live, Licence.learner_id.is_not(None))
        learners = await session.execute(
            update(Learner)
            .where(Learner.id.in_(holders))
            .values(
                licence_status=LearnerStatus.EXPIRED.value,
                licence_expires_at=_no_later(Learner.licence_expires_at, ended),
            )
        )
        licences = await session.execute(
            update(Licence).where(*live).values(status=LicenceStatus.EXPIRED.value, learner_id=None)
        )
        block.status = "expired"
        block.expired_at = ended
        block.licences_expired = affected(licences)
        block.learners_expired = affected(learners)
        outcome = await _what_expired(session, block)
        await audit.record_for_customer(
            session,
            customer_id=block.customer_id,
            actor=data.actor,
            action="licence_block.expired",
            subject_type="licence_block",
            subject_id=block.id,
            at=data.at,
            details={"reason": data.reason, "licences": outcome.licences_expired, "learners": outcome.learners_expired},
        )
    return outcome


def _no_later(column: QueryableAttribute[datetime | None], at: datetime) -> Case[Any]:
    """The licence end in `column`, or `at` if that is earlier."""
    return case((column > at, literal(at, UTCDateTime())), else_=column)


async def _what_expired(session: AsyncSession, block: LicenceBlock) -> BlockExpired:
    assert block.expired_at is not None
    return BlockExpired(
        block_id=block.id,
        expired_at=block.expired_at,
        licences_expired=block.licences_expired or 0,
        learners_expired=block.learners_expired or 0,
    )


def upgraded_trial(block: type[LicenceBlock], customer: type[Customer]) -> ColumnElement[bool]:
    """A trial block of a customer already premium: the upgrade ends it (its expiry may not be written yet)."""
    return and_(block.kind == BlockKind.TRIAL.value, customer.account_type == "premium")


async def next_expiries(
    session: AsyncSession, customer_ids: list[uuid.UUID], *, now: datetime
) -> dict[uuid.UUID, LicenceBlock]:
    """Each customer's running block that ends first (its next renewal), for the multi-tenant view, in one query.
    A block whose term is over is no renewal to come, though its expiry (the worker's write) may not have run."""
    found = await session.execute(
        select(LicenceBlock)
        .join(Customer, Customer.id == LicenceBlock.customer_id)
        .where(
            LicenceBlock.customer_id.in_(customer_ids),
            LicenceBlock.status == "active",
            LicenceBlock.expires_at > now,
            ~upgraded_trial(LicenceBlock, Customer),  # ended by its upgrade, its expiry not written yet
        )
        .order_by(LicenceBlock.customer_id, LicenceBlock.expires_at.desc(), LicenceBlock.id.desc())
    )
    return {block.customer_id: block for block in found.scalars()}  # the last, the soonest, wins


def running_until(customer: type[Customer], *, now: datetime, until: datetime) -> ColumnElement[bool]:
    """The customer has a running block that ends after `now` and by `until`: a renewal is due."""
    return (
        select(LicenceBlock.id)
        .where(
            LicenceBlock.customer_id == customer.id,
            LicenceBlock.status == "active",
            LicenceBlock.expires_at > now,
            LicenceBlock.expires_at <= until,
            ~upgraded_trial(LicenceBlock, customer),
        )
        .exists()
    )
