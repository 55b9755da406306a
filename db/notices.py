"""Notices: the outbox emails and in-app notifications an event produces, each written once per business key."""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Customer, LicenceBlock, LicenceOrder, Notification, OutboxEmail, Partner, User
from mail import templates
from payloads.blocks import BlockEvent, BlockNotice
from payloads.orders import NoticeResult, OrderEvent, OrderNotice
from rules.errors import NotFound


def message_id_for(key: str, mail_from: str) -> str:
    """A deterministic Message-ID, so a resent message is recognisably the same message."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "licensing.local"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


@dataclass(frozen=True)
class Notice:
    key: str
    recipient: User
    message: templates.Message
    kind: str
    subject_type: str
    subject_id: uuid.UUID


async def write_notices(
    session: AsyncSession, notices: list[Notice], *, at: datetime, mail_from: str
) -> list[uuid.UUID]:
    """Insert what is not there yet; return every outbox id of these keys, new or earlier."""
    keys = [n.key for n in notices]
    found = await session.execute(select(OutboxEmail.key, OutboxEmail.id).where(OutboxEmail.key.in_(keys)))
    existing = {key: email_id for key, email_id in found.all()}
    for notice in notices:
        if notice.key in existing:
            continue
        email = OutboxEmail(
            id=uuid.uuid4(),
            key=notice.key,
            message_id=message_id_for(notice.key, mail_from),
            recipient=notice.recipient.email,
            subject=notice.message.subject,
            text_body=notice.message.text,
            html_body=notice.message.html,
            status="pending",
            attempts=0,
            created_at=at,
        )
        session.add(email)
        session.add(
            Notification(
                user_id=notice.recipient.id,
                key=notice.key,
                kind=notice.kind,
                title=notice.message.subject,
                body=notice.message.text,
                subject_type=notice.subject_type,
                subject_id=notice.subject_id,
                created_at=at,
            )
        )
        existing[notice.key] = email.id
    return [existing[k] for k in keys]


_TEMPLATES: dict[OrderEvent, Callable[[templates.OrderFacts], templates.Message]] = {
    OrderEvent.REQUESTED: templates.order_requested,
    OrderEvent.REMINDER: templates.order_reminder,
    OrderEvent.ASSIGNED: templates.order_assigned,
    OrderEvent.REJECTED: templates.order_rejected,
    OrderEvent.CANCELLED: templates.order_cancelled,
}
_TO_CUSTOMER = {OrderEvent.ASSIGNED, OrderEvent.REJECTED}


async def _recipients(session: AsyncSession, order: LicenceOrder, event: OrderEvent) -> list[User]:
    scope = User.customer_id == order.customer_id if event in _TO_CUSTOMER else User.partner_id == order.partner_id
    return list((await session.execute(select(User).where(scope).order_by(User.email))).scalars())


async def write_order_notices(
    session: AsyncSession, order: LicenceOrder, notice: OrderNotice, *, mail_from: str
) -> list[uuid.UUID]:
    """The event's in-app notices and emails, in the caller's transaction; the outbox ids (earlier ones kept)."""
    customer = await session.get_one(Customer, order.customer_id)
    partner = await session.get_one(Partner, order.partner_id)
    block = None  # only an assigned order has one (and no event follows the assignment)
    if notice.event is OrderEvent.ASSIGNED:
        found = await session.execute(select(LicenceBlock).where(LicenceBlock.order_id == order.id))
        block = found.scalar_one_or_none()
    suffix = f"{notice.event.value}-{notice.sequence}" if notice.event is OrderEvent.REMINDER else notice.event.value
    render = _TEMPLATES[notice.event]
    notices = [
        Notice(
            key=f"order-{order.id}:{suffix}:{user.id}",
            recipient=user,
            message=render(
                templates.OrderFacts(
                    order_id=str(order.id),
                    partner_name=partner.name,
                    customer_name=customer.name,
                    quantity=order.quantity,
                    requested_at=order.requested_at,
                    recipient_name=user.name,
                    expires_at=block.expires_at if block else None,
                    reason=order.reject_reason,
                    reminder_number=notice.sequence,
                )
            ),
            kind=f"licence_order.{notice.event.value}",
            subject_type="licence_order",
            subject_id=order.id,
        )
        for user in await _recipients(session, order, notice.event)
    ]
    return await write_notices(session, notices, at=notice.at, mail_from=mail_from)


async def notify_order_event(
    sessions: async_sessionmaker[AsyncSession], notice: OrderNotice, *, mail_from: str
) -> NoticeResult:
    async with sessions.begin() as session:
        order = await session.get(LicenceOrder, notice.order_id)
        if order is None:
            raise NotFound(f"licence order {notice.order_id} does not exist")
        ids = await write_order_notices(session, order, notice, mail_from=mail_from)
    return NoticeResult(email_ids=ids)


async def _block_recipients(session: AsyncSession, customer: Customer) -> list[User]:
    scope = (User.customer_id == customer.id) | (User.partner_id == customer.partner_id)
    return list((await session.execute(select(User).where(scope).order_by(User.email))).scalars())


async def notify_block_event(
    sessions: async_sessionmaker[AsyncSession], notice: BlockNotice, *, mail_from: str
) -> NoticeResult:
    """Renewal reminders and the expiry summary go to the customer's managers and the partner's managers."""
    async with sessions.begin() as session:
        block = await session.get(LicenceBlock, notice.block_id)
        if block is None:
            raise NotFound(f"licence block {notice.block_id} does not exist")
        customer = await session.get_one(Customer, block.customer_id)
        partner = await session.get_one(Partner, customer.partner_id)
        suffix = f"reminder-{notice.offset}" if notice.event is BlockEvent.REMINDER else notice.event.value
        render = templates.block_reminder if notice.event is BlockEvent.REMINDER else templates.block_expired
        early = block.expired_at is not None and block.expired_at < block.expires_at
        notices = [
            Notice(
                key=f"block-{block.id}:{suffix}:{user.id}",
                recipient=user,
                message=render(
                    templates.BlockFacts(
                        block_id=str(block.id),
                        partner_name=partner.name,
                        customer_name=customer.name,
                        kind=block.kind,
                        quantity=block.quantity,
                        expires_at=block.expired_at if early and block.expired_at else block.expires_at,
                        recipient_name=user.name,
                        learners_expired=block.learners_expired or 0,
                        reason="the customer was upgraded to premium" if early else None,
                    )
                ),
                kind=f"licence_block.{notice.event.value}",
                subject_type="licence_block",
                subject_id=block.id,
            )
            for user in await _block_recipients(session, customer)
        ]
        ids = await write_notices(session, notices, at=notice.at, mail_from=mail_from)
    return NoticeResult(email_ids=ids)
