"""Email is never lost and never doubled: temporary SMTP refusals are retried, permanent ones recorded."""

import asyncio
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from db import orders
from db.models import OutboxEmail
from licensing.config import Settings
from licensing.temporal import postman
from mail import smtp as smtp_client
from mail.postman import Postman
from payloads.common import Role
from payloads.email import DeliverEmail, EmailStatus
from tests import factories
from tests.ordering import Orders, new_order, order_id
from tests.smtp_server import SmtpServer, free_port


async def _assigned_email(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> OutboxEmail:
    handle = await orders.request(tenant, 2)
    await orders.assign(handle, tenant)
    await handle.result()
    async with sessions() as session:
        key = f"order-{order_id(handle)}:assigned:%"
        return (await session.execute(select(OutboxEmail).where(OutboxEmail.key.like(key)))).scalar_one()


def _assigned_messages(smtp: SmtpServer, tenant: factories.Tenant) -> list[EmailMessage]:
    """The customer manager's "assigned" emails (the shared time-skipping clock may also have brought the new
    term's reminders)."""
    return [m for m in smtp.inbox.to(tenant.customer_manager.email) if " assigned " in str(m["Subject"])]


async def test_a_busy_relay_is_retried_until_the_message_is_delivered_once(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    smtp.inbox.refusals.extend(["250 OK"])  # the partner's "requested" email goes through
    smtp.inbox.refusals.extend(["421 4.3.2 try again later"] * 3)
    email = await _assigned_email(orders, sessions, tenant)
    assert (email.status, email.attempts, len(_assigned_messages(smtp, tenant))) == ("sent", 4, 1)


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
    [message] = _assigned_messages(smtp, tenant)
    assert isinstance(message, EmailMessage)
    kinds = sorted(part.get_content_type() for part in message.iter_parts())
    assert (message["Message-ID"], kinds) == (email.message_id, ["text/html", "text/plain"])


# Sending at once: the activity that wrote an event's emails sends them right after its transaction, on one
# connection; only what the relay did not take then is left to the retrying delivery activity.

NOW = datetime(2026, 11, 27, 9, tzinfo=UTC)


async def _requested_emails(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings
) -> tuple[list[uuid.UUID], list[str]]:
    """A saved order's "requested" emails to two partner managers (sorted by address): ids and addresses."""
    await factories.person(sessions, Role.PARTNER_MANAGER, partner_id=tenant.partner_id)
    data = new_order(tenant, 2, at=NOW, notify=True)
    registered = await orders.persist_order(sessions, data, mail_from=settings.mail_from)
    async with sessions() as session:
        found = await session.execute(
            select(OutboxEmail.id, OutboxEmail.recipient).where(OutboxEmail.id.in_(registered.email_ids))
        )
        by_id = {email_id: recipient for email_id, recipient in found.all()}
    return registered.email_ids, [by_id[i] for i in registered.email_ids]


async def _states(sessions: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> list[tuple[str, int, bool]]:
    async with sessions() as session:
        found = await session.execute(
            select(OutboxEmail.id, OutboxEmail.status, OutboxEmail.attempts, OutboxEmail.last_error).where(
                OutboxEmail.id.in_(ids)
            )
        )
        rows = {row.id: (row.status, row.attempts, row.last_error is not None) for row in found}
    return [rows[i] for i in ids]


async def test_emails_sent_at_once_go_out_once_however_often_the_activity_runs(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    ids, recipients = await _requested_emails(sessions, tenant, settings)
    mail = postman(settings, sessions)
    left = [await mail.send_at_once(ids), await mail.send_at_once(ids)]
    received = [len(smtp.inbox.to(r)) for r in recipients]
    assert (left, received, await _states(sessions, ids)) == ([[], []], [1, 1], [("sent", 1, False)] * 2)


async def test_a_permanent_refusal_is_recorded_and_the_next_message_still_goes(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    ids, recipients = await _requested_emails(sessions, tenant, settings)
    smtp.inbox.refusals.append("550 5.1.1 no such mailbox")
    left = await postman(settings, sessions).send_at_once(ids)
    received = [len(smtp.inbox.to(r)) for r in recipients]
    assert (left, received, await _states(sessions, ids)) == ([], [0, 1], [("failed", 1, True), ("sent", 1, False)])


async def test_a_temporary_refusal_leaves_that_message_and_the_rest_for_the_retrying_delivery(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    ids, recipients = await _requested_emails(sessions, tenant, settings)
    smtp.inbox.refusals.append("421 4.3.2 try again later")
    left = await postman(settings, sessions).send_at_once(ids)
    assert (left, await _states(sessions, ids)) == (ids, [("pending", 1, True), ("pending", 0, False)])
    result = await ActivityEnvironment().run(
        EmailActivities(postman(settings, sessions)).deliver_email, DeliverEmail(email_id=ids[0])
    )
    assert (result.status, len(smtp.inbox.to(recipients[0]))) == (EmailStatus.SENT, 1)


async def test_an_absent_or_silent_relay_costs_the_activity_at_most_its_time_budget(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings
) -> None:
    ids, _ = await _requested_emails(sessions, tenant, settings)
    absent = settings.model_copy(update={"smtp_port": free_port()})
    assert await postman(absent, sessions).send_at_once(ids) == ids

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets; the client gives up first

    silent = await asyncio.start_server(say_nothing, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    relay = smtp_client.Relay("127.0.0.1", port, timeout_seconds=30)
    quick = Postman(sessions, relay, mail_from=settings.mail_from, clock=lambda: NOW, at_once_seconds=0.5)
    started = time.monotonic()
    async with silent:
        left = await quick.send_at_once(ids)
    assert (left, time.monotonic() - started < 5) == (ids, True)
    assert await _states(sessions, ids) == [("pending", 2, True), ("pending", 0, False)]
