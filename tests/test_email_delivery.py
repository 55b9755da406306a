"""Email is never lost and never doubled: temporary SMTP refusals are retried, permanent ones recorded."""

from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboxEmail
from tests import factories
from tests.ordering import Orders, order_id
from tests.smtp_server import SmtpServer


async def _assigned_email(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> OutboxEmail:
    handle = await orders.request(tenant, 2)
    await orders.assign(handle, tenant)
    await handle.result()
    async with sessions() as session:
        key = f"order-{order_id(handle)}:assigned:%"
        return (await session.execute(select(OutboxEmail).where(OutboxEmail.key.like(key)))).scalar_one()


async def test_a_busy_relay_is_retried_until_the_message_is_delivered_once(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    smtp.inbox.refusals.extend(["250 OK"])  # the partner's "requested" email goes through
    smtp.inbox.refusals.extend(["421 4.3.2 try again later"] * 3)
    email = await _assigned_email(orders, sessions, tenant)
    delivered = smtp.inbox.to(tenant.customer_manager.email)
    assert (email.status, email.attempts, len(delivered)) == ("sent", 4, 1)


async def test_a_refused_recipient_is_recorded_as_failed_without_endless_retries(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    smtp.inbox.refusals.extend(["250 OK", "550 5.1.1 no such mailbox"])
    email = await _assigned_email(orders, sessions, tenant)
    assert (email.status, email.attempts, email.last_error) == ("failed", 1, "550 5.1.1 no such mailbox")


async def test_a_message_has_a_stable_message_id_and_both_bodies(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    email = await _assigned_email(orders, sessions, tenant)
    [message] = smtp.inbox.to(tenant.customer_manager.email)
    assert isinstance(message, EmailMessage)
    kinds = sorted(part.get_content_type() for part in message.iter_parts())
    assert (message["Message-ID"], kinds) == (email.message_id, ["text/html", "text/plain"])
