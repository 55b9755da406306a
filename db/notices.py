"""Notices: the outbox emails and in-app notifications an event produces, each written once per business key."""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import outbox
from db.models import Customer, LicenceBlock, LicenceOrder, Notification, OutboxEmail, Partner, User
from mail import templates
from payloads.blocks import BlockEvent, BlockNotice
from payloads.common import Role
from payloads.orders import NoticeResult, OrderEvent, OrderNotice
from rules.errors import NotFound
from rules.orders import OrderStatus


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


@dataclass(frozen=True)
class Written:
    """Every outbox id of an event's notices (new or earlier), and the messages this transaction wrote (claimed
    for the activity that wrote them: it sends them at once, `mail.postman`)."""

    email_ids: list[uuid.UUID]
    new: list[OutboxEmail]


async def write_notices(
    session: AsyncSession, notices: list[Notice], *, at: datetime, mail_from: str, fresh: bool = False
) -> Written:
    """Insert what is not there yet. `fresh`: the caller's transaction has just made the change these notices
    announce, so none of them can exist yet and none is looked for (the keys' unique constraint still holds:
    a mistaken `fresh` fails the transaction, it cannot write a notice twice)."""
    keys = [n.key for n in notices]
    existing: dict[str, uuid.UUID] = {}
    if not fresh:
        found = await session.execute(select(OutboxEmail.key, OutboxEmail.id).where(OutboxEmail.key.in_(keys)))
        existing = {key: email_id for key, email_id in found.all()}
    new: list[OutboxEmail] = []
    claim = outbox.Claim.new(outbox.WRITER_CLAIM)  # the activity writing them sends them right after
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
            claimed_by=claim.token,
            claimed_until=claim.until,
        )
        session.add(email)
        new.append(email)
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
    return Written([existing[k] for k in keys], new)


_TEMPLATES: dict[OrderEvent, Callable[[templates.OrderFacts], templates.Message]] = {
    OrderEvent.REQUESTED: templates.order_requested,
    OrderEvent.REMINDER: templates.order_reminder,
    OrderEvent.ASSIGNED: templates.order_assigned,
    OrderEvent.REJECTED: templates.order_rejected,
    OrderEvent.CANCELLED: templates.order_cancelled,
}
_TO_CUSTOMER = {OrderEvent.ASSIGNED, OrderEvent.REJECTED}


async def _still_acting(session: AsyncSession, scope: ColumnElement[bool]) -> list[User]:
    """The users in `scope` whose access was not removed: only they are told."""
    found = await session.execute(select(User).where(scope, User.access_removed_at.is_(None)).order_by(User.email))
    return list(found.scalars())


async def _recipients(session: AsyncSession, order: LicenceOrder, event: OrderEvent, *, both: bool) -> list[User]:
    scope = User.customer_id == order.customer_id if event in _TO_CUSTOMER else User.partner_id == order.partner_id
    if both:
        scope = (User.customer_id == order.customer_id) | (User.partner_id == order.partner_id)
    return await _still_acting(session, scope)


async def _cancelled_by_partner(session: AsyncSession, order: LicenceOrder) -> bool:
    """Whether a partner's manager cancelled the order (in manage mode, for the customer): its customer's managers
    did not, and are told."""
    if order.decided_by_id is None:
        return False
    role = await session.scalar(select(User.role).where(User.id == order.decided_by_id))
    return role == Role.PARTNER_MANAGER.value


async def _names(session: AsyncSession, customer_id: uuid.UUID) -> tuple[str, str]:
    """The customer's name and its partner's."""
    found = await session.execute(
        select(Customer.name, Partner.name)
        .join(Partner, Partner.id == Customer.partner_id)
        .where(Customer.id == customer_id)
    )
    customer_name, partner_name = found.one()
    return customer_name, partner_name


async def write_order_notices(
    session: AsyncSession,
    order: LicenceOrder,
    notice: OrderNotice,
    *,
    mail_from: str,
    block: LicenceBlock | None = None,
    fresh: bool = False,
) -> Written:
    """The event's in-app notices and emails, in the caller's transaction (see `write_notices` for `fresh`).
    An assignment's notices name its block: pass it if the caller has it at hand."""
    customer_name, partner_name = await _names(session, order.customer_id)
    if notice.event is OrderEvent.ASSIGNED and block is None:
        found = await session.execute(select(LicenceBlock).where(LicenceBlock.order_id == order.id))
        block = found.scalar_one_or_none()
    suffix = f"{notice.event.value}-{notice.sequence}" if notice.event is OrderEvent.REMINDER else notice.event.value
    render = _TEMPLATES[notice.event]
    by_partner = notice.event is OrderEvent.CANCELLED and await _cancelled_by_partner(session, order)
    # Cancelled by the service (no one) or by the partner: both sides are told.
    both = notice.event is OrderEvent.CANCELLED and (order.decided_by_id is None or by_partner)
    notices = [
        Notice(
            key=f"order-{order.id}:{suffix}:{user.id}",
            recipient=user,
            message=render(
                templates.OrderFacts(
                    order_id=str(order.id),
                    partner_name=partner_name,
                    customer_name=customer_name,
                    quantity=order.quantity,
                    requested_at=order.requested_at,
                    recipient_name=user.name,
                    expires_at=block.expires_at if block else None,
                    reason=order.reject_reason,
                    reminder_number=notice.sequence,
                    cancelled_by_partner=by_partner,
                )
            ),
            kind=f"licence_order.{notice.event.value}",
            subject_type="licence_order",
            subject_id=order.id,
        )
        for user in await _recipients(session, order, notice.event, both=both)
    ]
    return await write_notices(session, notices, at=notice.at, mail_from=mail_from, fresh=fresh)


async def notify_order_event(
    sessions: async_sessionmaker[AsyncSession], notice: OrderNotice, *, mail_from: str
) -> NoticeResult:
    async with sessions.begin() as session:
        order = await session.get(LicenceOrder, notice.order_id)
        if order is None:
            raise NotFound(f"licence order {notice.order_id} does not exist")
        if notice.event is OrderEvent.REMINDER and order.status != OrderStatus.REQUESTED.value:
            return NoticeResult()  # decided while this reminder waited (retried through an outage): nothing to remind
        written = await write_order_notices(session, order, notice, mail_from=mail_from)
    return NoticeResult().wrote(written)


async def _block_recipients(session: AsyncSession, customer: Customer) -> list[User]:
    scope = (User.customer_id == customer.id) | (User.partner_id == customer.partner_id)
    return await _still_acting(session, scope)


async def notify_block_event(
    sessions: async_sessionmaker[AsyncSession], notice: BlockNotice, *, mail_from: str
) -> NoticeResult:
    """Renewal reminders and the expiry summary go to the customer's managers and the partner's managers."""
    async with sessions.begin() as session:
        block = await session.get(LicenceBlock, notice.block_id)
        if block is None:
            raise NotFound(f"licence block {notice.block_id} does not exist")
        if notice.event is BlockEvent.REMINDER and block.status != "active":
            return NoticeResult()  # ended early (an upgrade seen by reconcile): nothing left to renew
        customer = await session.get_one(Customer, block.customer_id)
        if notice.event is BlockEvent.REMINDER and block.kind == "trial" and customer.account_type == "premium":
            # Upgraded while Temporal was away: the trial ends at the worker's next repair, not at its term.
            return NoticeResult()
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
        written = await write_notices(session, notices, at=notice.at, mail_from=mail_from)
    return NoticeResult().wrote(written)
