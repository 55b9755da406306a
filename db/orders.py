"""Licence orders in the database: persist, assign (stock -> block -> licences), reject and cancel.

Every function is one transaction and safe to call again with the same input: a retried activity finds its
own earlier work and changes nothing twice.
"""

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import audit, blocks, directory
from db.models import LicenceBlock, LicenceOrder, Partner
from db.notices import Written, write_order_notices
from payloads.orders import (
    AssignOrder,
    CloseOrder,
    OrderEvent,
    OrderNotice,
    OrderOutcome,
    OrderRegistered,
    PersistOrder,
)
from rules.errors import NotFound
from rules.licences import BlockKind
from rules.orders import OrderDecision, OrderStatus, check_stock, check_waiting, decide

_DECISION_FOR = {OrderStatus.REJECTED: OrderDecision.REJECT, OrderStatus.CANCELLED: OrderDecision.CANCEL}


async def persist_order(
    sessions: async_sessionmaker[AsyncSession], data: PersistOrder, *, mail_from: str = ""
) -> OrderRegistered:
    async with sessions.begin() as session:
        if data.waiting_limit is not None:
            # The lock first, then the look for the order: an attempt retried while the first still runs waits
            # here and then finds the order the first saved, rather than counting it against the limit.
            await directory.lock_customer(session, data.customer_id)
        order = await session.get(LicenceOrder, data.order_id, populate_existing=True)
        new = order is None
        if order is None:
            if data.waiting_limit is not None:
                check_waiting(waiting=await waiting_requests(session, data.customer_id), limit=data.waiting_limit)
            order = LicenceOrder(
                id=data.order_id,
                customer_id=data.customer_id,
                partner_id=data.partner_id,
                quantity=data.quantity,
                status=OrderStatus.REQUESTED.value,
                requested_at=data.requested_at,
                requested_by_id=data.requested_by.user_id,
            )
            session.add(order)
            audit.record(
                session,
                actor=data.requested_by,
                action="licence_order.requested",
                subject_type="licence_order",
                subject_id=data.order_id,
                at=data.requested_at,
                partner_id=data.partner_id,
                customer_id=data.customer_id,
                details={"quantity": data.quantity},
            )
        registered = OrderRegistered(
            order_id=order.id, status=OrderStatus(order.status), requested_at=order.requested_at
        )
        if data.notify:
            written = await _notices(
                session, order, OrderEvent.REQUESTED, at=order.requested_at, mail_from=mail_from, fresh=new
            )
            registered.wrote(written)
    return registered


async def waiting_requests(session: AsyncSession, customer_id: uuid.UUID) -> int:
    """How many of the customer's orders wait for a decision."""
    waiting = await session.scalar(
        select(func.count())
        .select_from(LicenceOrder)
        .where(LicenceOrder.customer_id == customer_id, LicenceOrder.status == OrderStatus.REQUESTED.value)
    )
    return waiting or 0


async def _notices(
    session: AsyncSession,
    order: LicenceOrder,
    event: OrderEvent,
    *,
    at: datetime,
    mail_from: str,
    fresh: bool,
    block: LicenceBlock | None = None,
) -> Written:
    """The event's notices, written with the change they announce (again on a retry: the same ids come back).
    `fresh`: this transaction made the change, so its notices cannot exist yet."""
    assert mail_from, "notices need the sender's address"
    notice = OrderNotice(order_id=order.id, event=event, at=at)
    return await write_order_notices(session, order, notice, mail_from=mail_from, block=block, fresh=fresh)


async def _load(session: AsyncSession, order_id: uuid.UUID) -> LicenceOrder:
    order = await session.get(LicenceOrder, order_id, populate_existing=True)
    if order is None:
        raise NotFound(f"licence order {order_id} does not exist")
    return order


async def _mark_decided(
    session: AsyncSession,
    order_id: uuid.UUID,
    status: OrderStatus,
    *,
    by: uuid.UUID | None,
    at: datetime,
    key: str | None,
    reason: str | None = None,
) -> bool:
    """Move a requested order on; False when it had already left `requested` (the WHERE is the lock)."""
    moved = await session.execute(
        update(LicenceOrder)
        .where(LicenceOrder.id == order_id, LicenceOrder.status == OrderStatus.REQUESTED.value)
        .values(status=status.value, decided_at=at, decided_by_id=by, reject_reason=reason, decision_key=key)
        .returning(LicenceOrder.id)
    )
    return moved.first() is not None


def _decided_at(order: LicenceOrder) -> datetime:
    assert order.decided_at is not None, "a decided order has its time"
    return order.decided_at


def _same_decision(order: LicenceOrder, status: OrderStatus, *, key: str | None, at: datetime) -> bool:
    """Whether the order was decided by this very decision, run before (a retry, or a lost workflow task)."""
    if order.status != status.value:
        return False
    return order.decision_key == key if key is not None else order.decided_at == at


async def stored_decision(
    sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID, *, mail_from: str
) -> OrderOutcome | None:
    """The decision the database holds for an order, with the notices its transaction wrote (the same ids come
    back); None while it is requested. For a workflow whose update was lost after its transaction committed."""
    async with sessions.begin() as session:
        order = await _load(session, order_id)
        status = OrderStatus(order.status)
        if status is OrderStatus.REQUESTED:
            return None
        block = await _block_of(session, order.id) if status is OrderStatus.ASSIGNED else None
        outcome = _outcome(order, status, _decided_at(order), block)
        event = OrderEvent.of_decision(status)
        written = await _notices(
            session, order, event, at=_decided_at(order), mail_from=mail_from, fresh=False, block=block
        )
        return outcome.wrote(written)


async def _block_of(session: AsyncSession, order_id: uuid.UUID) -> LicenceBlock:
    """The block an assigned order made."""
    return (await session.execute(select(LicenceBlock).where(LicenceBlock.order_id == order_id))).scalar_one()


def _outcome(
    order: LicenceOrder, status: OrderStatus, decided_at: datetime, block: LicenceBlock | None = None
) -> OrderOutcome:
    outcome = OrderOutcome(order_id=order.id, status=status, decided_at=decided_at)
    if block is not None:
        outcome.block_id, outcome.starts_at, outcome.expires_at = block.id, block.starts_at, block.expires_at
    return outcome


async def _debit_stock(session: AsyncSession, partner_id: uuid.UUID, quantity: int) -> int:
    debited = await session.execute(
        update(Partner)
        .where(Partner.id == partner_id, Partner.licence_stock >= quantity)
        .values(licence_stock=Partner.licence_stock - quantity)
        .returning(Partner.licence_stock)
    )
    remaining = debited.scalar_one_or_none()
    if remaining is None:
        stock = (await session.execute(select(Partner.licence_stock).where(Partner.id == partner_id))).scalar_one()
        check_stock(stock=stock, quantity=quantity)
        raise AssertionError("the conditional debit failed although the stock covers the order")
    return remaining


async def assign_order(
    sessions: async_sessionmaker[AsyncSession], data: AssignOrder, *, mail_from: str = ""
) -> OrderOutcome:
    """Debit the partner's stock and create the order's licence block, all or nothing."""
    async with sessions.begin() as session:
        order, block, fresh = await _assign(session, data)
        decided_at = data.assigned_at if fresh else _decided_at(order)
        outcome = _outcome(order, OrderStatus.ASSIGNED, decided_at, block)
        if data.notify:
            written = await _notices(
                session, order, OrderEvent.ASSIGNED, at=decided_at, mail_from=mail_from, fresh=fresh, block=block
            )
            outcome.wrote(written)
    return outcome


async def _assign(session: AsyncSession, data: AssignOrder) -> tuple[LicenceOrder, LicenceBlock, bool]:
    """The order and its new block, and True; or, for this very assignment retried, what it made and False."""
    order = await _load(session, data.order_id)
    if not await _mark_decided(
        session, order.id, OrderStatus.ASSIGNED, by=data.actor.user_id, at=data.assigned_at, key=data.decision_key
    ):
        order = await _load(session, data.order_id)
        if _same_decision(order, OrderStatus.ASSIGNED, key=data.decision_key, at=data.assigned_at):
            return order, await _block_of(session, order.id), False
        decide(OrderStatus(order.status), OrderDecision.ASSIGN)
    remaining = await _debit_stock(session, order.partner_id, order.quantity)
    block = await blocks.create_block(
        session,
        customer_id=order.customer_id,
        kind=BlockKind.PREMIUM,
        quantity=order.quantity,
        starts_at=data.assigned_at,
        expires_at=data.expires_at,
        order_id=order.id,
    )
    _audit_assignment(session, order, data, block_id=block.id, remaining=remaining)
    return order, block, True


def _audit_assignment(
    session: AsyncSession, order: LicenceOrder, data: AssignOrder, *, block_id: uuid.UUID, remaining: int
) -> None:
    audit.record(
        session,
        actor=data.actor,
        action="licence_order.assigned",
        subject_type="licence_order",
        subject_id=order.id,
        at=data.assigned_at,
        partner_id=order.partner_id,
        customer_id=order.customer_id,
        details={"quantity": order.quantity, "block_id": str(block_id), "expires_at": data.expires_at.isoformat()},
    )
    audit.record(
        session,
        actor=data.actor,
        action="licence_stock.debited",
        subject_type="partner",
        subject_id=order.partner_id,
        # When the stock moved (its row is locked now), not when the partner decided: the stock statement lists
        # moves by this time, and a purchase credited while this activity retried came before it.
        at=max(data.assigned_at, datetime.now(UTC)),
        partner_id=order.partner_id,
        customer_id=order.customer_id,
        details={"quantity": order.quantity, "order_id": str(order.id), "licence_stock": remaining},
    )


async def close_order(
    sessions: async_sessionmaker[AsyncSession], data: CloseOrder, *, mail_from: str = ""
) -> OrderOutcome:
    """Reject or cancel a requested order."""
    async with sessions.begin() as session:
        fresh = await _close(session, data)
        order = await _load(session, data.order_id)
        decided_at = data.decided_at if fresh else _decided_at(order)
        outcome = _outcome(order, data.status, decided_at)
        if data.notify:
            event = OrderEvent.of_decision(data.status)
            written = await _notices(session, order, event, at=decided_at, mail_from=mail_from, fresh=fresh)
            outcome.wrote(written)
    return outcome


async def _close(session: AsyncSession, data: CloseOrder) -> bool:
    """True if this call closed the order; False for this very decision, retried."""
    order = await _load(session, data.order_id)
    if not await _mark_decided(
        session,
        order.id,
        data.status,
        by=data.actor.user_id,
        at=data.decided_at,
        key=data.decision_key,
        reason=data.reason,
    ):
        order = await _load(session, data.order_id)
        if _same_decision(order, data.status, key=data.decision_key, at=data.decided_at):
            return False
        decide(OrderStatus(order.status), _DECISION_FOR[data.status])
    audit.record(
        session,
        actor=data.actor,
        action=f"licence_order.{data.status.value}",
        subject_type="licence_order",
        subject_id=order.id,
        at=data.decided_at,
        partner_id=order.partner_id,
        customer_id=order.customer_id,
        details={"reason": data.reason} if data.reason else {},
    )
    return True
