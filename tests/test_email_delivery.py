"""Email is never lost and never doubled: temporary SMTP refusals are retried, permanent ones recorded."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from db import orders, outbox
from db.models import OutboxEmail
from db.session import create_engine, create_session_factory
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
    return smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")


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


def _envelope(**changes: str) -> smtp_client.Envelope:
    """A message to send straight to a relay; `changes` replace the plain ASCII defaults."""
    fields = {
        "message_id": "<one@licensing.example>",
        "mail_from": "licensing@example.com",
        "recipient": "manager@partner.example",
        "subject": "2 licences requested",
        "text": "2 licences requested.",
        "html": "<p>2 licences requested.</p>",
    }
    return smtp_client.Envelope(**(fields | changes), created_at=NOW)


async def test_names_subjects_and_bodies_beyond_ascii_arrive_as_written(smtp: SmtpServer) -> None:
    envelope = _envelope(
        mail_from="Lizenzverwaltung Müller <licensing@example.com>",
        subject="5 licences assigned to Zoë's Café, valid until 27 Nov 2027 (€ 0)",
        text="Hallo Zoë,\n\nyour 5 licences are ready. Grüße\n",
        html="<p>Hallo Zoë, your 5 licences are ready. Grüße</p>",
    )
    await smtp_client.send(envelope, smtp_client.Relay("127.0.0.1", smtp.port, 5))
    [message] = smtp.inbox.messages
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and html is not None
    assert (
        str(message["From"]),
        message["From"].addresses[0].display_name,
        str(message["To"]),
        str(message["Subject"]),
        str(message["Message-ID"]),
        message["Date"].datetime,
        message.get_content_type(),
        plain.get_content(),
        html.get_content().strip(),
    ) == (
        "Lizenzverwaltung Müller <licensing@example.com>",
        "Lizenzverwaltung Müller",
        envelope.recipient,
        envelope.subject,
        envelope.message_id,
        NOW,
        "multipart/alternative",
        envelope.text,
        envelope.html,
    )


async def test_a_line_break_in_a_subject_cannot_end_the_header_or_add_one(smtp: SmtpServer) -> None:
    """A customer's name with a line break (and a header after it) stays one line of the subject."""
    subject = "Acme\nReply-To : thief@example.com\r\nBcc: thief@example.com requests 2 licences"
    envelope = _envelope(subject=subject)
    await smtp_client.send(envelope, smtp_client.Relay("127.0.0.1", smtp.port, 5))
    [message] = smtp.inbox.messages
    assert (
        str(message["Subject"]),
        message["Reply-To"],
        message["Bcc"],
        str(message["Message-ID"]),
        message["Date"].datetime,
        message.get_content_type(),
    ) == (
        "Acme Reply-To : thief@example.com Bcc: thief@example.com requests 2 licences",
        None,
        None,
        envelope.message_id,
        NOW,
        "multipart/alternative",
    )


async def test_an_address_beyond_ascii_goes_out_with_smtputf8() -> None:
    envelope = _envelope(recipient="zoë@café.example", text="Hallo Zoë")
    with SmtpServer(utf8=True) as relay:
        await smtp_client.send(envelope, smtp_client.Relay("127.0.0.1", relay.port, 5))
        [message] = relay.inbox.messages
    plain = message.get_body(("plain",))
    assert plain is not None
    assert (str(message["To"]), plain.get_content().strip()) == ("zoë@café.example", "Hallo Zoë")


async def test_an_address_beyond_ascii_is_a_permanent_failure_on_a_relay_without_smtputf8(smtp: SmtpServer) -> None:
    with pytest.raises(smtp_client.PermanentFailure, match="SMTPUTF8"):
        await smtp_client.send(_envelope(recipient="zoë@café.example"), smtp_client.Relay("127.0.0.1", smtp.port, 5))
    assert smtp.inbox.messages == []


# Sending at once: the activity that wrote an event's emails sends them right after its transaction, on one
# connection; only what the relay did not take then is left to the retrying delivery activity.

NOW = datetime(2026, 11, 27, 9, tzinfo=UTC)


async def _requested_emails(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings
) -> tuple[list[uuid.UUID], list[str], list[OutboxEmail]]:
    """A saved order's "requested" emails to two partner managers (sorted by address): ids, addresses and the
    messages as written (claimed for the activity that wrote them, which sends them at once)."""
    await factories.person(sessions, Role.PARTNER_MANAGER, partner_id=tenant.partner_id)
    data = new_order(tenant, 2, at=NOW, notify=True)
    registered = await orders.persist_order(sessions, data, mail_from=settings.mail_from)
    async with sessions() as session:
        found = await session.execute(
            select(OutboxEmail.id, OutboxEmail.recipient).where(OutboxEmail.id.in_(registered.email_ids))
        )
        by_id = {email_id: recipient for email_id, recipient in found.all()}
    return registered.email_ids, [by_id[i] for i in registered.email_ids], registered.written_now()


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
    ids, recipients, written = await _requested_emails(sessions, tenant, settings)
    mail = postman(settings, sessions)
    left = [await mail.send_at_once(ids, written_now=written), await mail.send_at_once(ids)]
    received = [len(smtp.inbox.to(r)) for r in recipients]
    assert (left, received, await _states(sessions, ids)) == ([[], []], [1, 1], [("sent", 1, False)] * 2)


async def test_messages_just_written_are_sent_as_written_and_a_retry_reads_what_is_pending(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    await factories.person(sessions, Role.PARTNER_MANAGER, partner_id=tenant.partner_id)
    data = new_order(tenant, 2, at=NOW, notify=True)
    first = await orders.persist_order(sessions, data, mail_from=settings.mail_from)
    retried = await orders.persist_order(sessions, data, mail_from=settings.mail_from)
    async with sessions.begin() as session:  # what the database holds now differs from what was written
        await session.execute(update(OutboxEmail).values(subject="read back"))
    mail = postman(settings, sessions)
    left = await mail.send_at_once(first.email_ids, written_now=first.written_now())
    subjects = [str(message["Subject"]) for message in smtp.inbox.messages]
    assert (len(first.written_now()), retried.written_now(), left, len(subjects)) == (2, [], [], 2)
    assert "read back" not in subjects
    # The retried save wrote nothing: the postman reads what is still pending, and both were sent.
    assert await mail.send_at_once(retried.email_ids, written_now=retried.written_now()) == []
    assert len(smtp.inbox.messages) == 2


async def test_a_permanent_refusal_is_recorded_and_the_next_message_still_goes(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    ids, recipients, written = await _requested_emails(sessions, tenant, settings)
    smtp.inbox.refusals.append("550 5.1.1 no such mailbox")
    left = await postman(settings, sessions).send_at_once(ids, written_now=written)
    received = [len(smtp.inbox.to(r)) for r in recipients]
    assert (left, received, await _states(sessions, ids)) == ([], [0, 1], [("failed", 1, True), ("sent", 1, False)])


async def test_a_temporary_refusal_leaves_that_message_and_the_rest_for_the_retrying_delivery(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    ids, recipients, written = await _requested_emails(sessions, tenant, settings)
    smtp.inbox.refusals.append("421 4.3.2 try again later")
    left = await postman(settings, sessions).send_at_once(ids, written_now=written)
    assert (left, await _states(sessions, ids)) == (ids, [("pending", 1, True), ("pending", 0, False)])
    result = await ActivityEnvironment().run(
        EmailActivities(postman(settings, sessions)).deliver_email, DeliverEmail(email_id=ids[0])
    )
    assert (result.status, len(smtp.inbox.to(recipients[0]))) == (EmailStatus.SENT, 1)


async def test_an_absent_or_silent_relay_costs_the_activity_at_most_its_time_budget(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings
) -> None:
    ids, _, written = await _requested_emails(sessions, tenant, settings)
    absent = settings.model_copy(update={"smtp_port": free_port()})
    assert await postman(absent, sessions).send_at_once(ids, written_now=written) == ids

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


@contextlib.asynccontextmanager
async def _reachable_after(url: str, seconds: float) -> AsyncIterator[str]:
    """Another URL of the same database, unreachable for its first `seconds`: on SQLite its folder appears (a
    link to the real one) only then; on PostgreSQL a forwarder to the server starts listening only then."""
    target = make_url(url)
    if target.get_backend_name() == "sqlite":
        real = Path(target.database or "")
        later = real.parent.parent / f"later-{uuid.uuid4().hex[:8]}"

        async def appear() -> None:
            await asyncio.sleep(seconds)
            later.symlink_to(real.parent, target_is_directory=True)

        opening = asyncio.create_task(appear())
        try:
            yield f"sqlite:///{later / real.name}"
        finally:
            opening.cancel()
            later.unlink(missing_ok=True)
        return

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(target.host, target.port or 5432)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    port = free_port()
    servers: list[asyncio.Server] = []

    async def listen() -> None:
        await asyncio.sleep(seconds)
        servers.append(await asyncio.start_server(forward, "127.0.0.1", port))

    opening = asyncio.create_task(listen())
    try:
        yield target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        opening.cancel()
        for server in servers:
            server.close()


def _postman_on(url: str, settings: Settings, *, record_seconds: float) -> tuple[AsyncEngine, Postman]:
    engine = create_engine(url)
    relay = smtp_client.Relay(settings.smtp_host, settings.smtp_port, 5)
    factory = create_session_factory(engine)
    mail = Postman(factory, relay, mail_from=settings.mail_from, clock=lambda: NOW, record_seconds=record_seconds)
    return engine, mail


async def test_what_the_relay_took_is_recorded_once_the_database_is_back_not_sent_again(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, database_url: str
) -> None:
    """Failing to record a sent message would retry the activity and send it again: the postman waits for a
    database that is briefly away instead."""
    ids, _, _ = await _requested_emails(sessions, tenant, settings)
    async with _reachable_after(database_url, 1.0) as later:
        engine, mail = _postman_on(later, settings, record_seconds=30)
        started = time.monotonic()
        try:
            await mail.record([outbox.Attempt(email_id, "sent") for email_id in ids])
        finally:
            await engine.dispose()
    waited = time.monotonic() - started
    assert (await _states(sessions, ids), waited >= 1) == ([("sent", 1, False)] * 2, True)


async def test_recording_gives_up_when_the_database_stays_away(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, database_url: str
) -> None:
    ids, _, _ = await _requested_emails(sessions, tenant, settings)
    async with _reachable_after(database_url, 60) as never:
        engine, mail = _postman_on(never, settings, record_seconds=0.5)
        try:
            with pytest.raises(OperationalError):
                await mail.record([outbox.Attempt(email_id, "sent") for email_id in ids])
        finally:
            await engine.dispose()
    assert await _states(sessions, ids) == [("pending", 0, False)] * 2
