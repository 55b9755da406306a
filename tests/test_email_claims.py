"""One attempt at a time sends a message: two attempts that overlap (a retry while the first still runs, an email
activity a cancelled workflow stopped waiting for) send it once, and the claim of an attempt that died lapses."""

import asyncio
import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from db import notices, orders, outbox
from db.models import OutboxEmail
from licensing.config import Settings
from licensing.temporal import postman
from payloads.common import Role
from payloads.email import DeliverEmail, DeliveryResult, EmailStatus
from payloads.orders import OrderEvent, OrderNotice, OrderRegistered
from tests import factories
from tests.ordering import new_order
from tests.smtp_server import SmtpServer

NOW = datetime(2026, 11, 28, 9, tzinfo=UTC)


async def _requested(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings
) -> OrderRegistered:
    """A saved order whose "requested" email to the partner's manager is written (claimed by its writer)."""
    return await orders.persist_order(sessions, new_order(tenant, 2, at=NOW, notify=True), mail_from=settings.mail_from)


async def _row(sessions: async_sessionmaker[AsyncSession], email_id: object) -> OutboxEmail:
    async with sessions() as session:
        return (await session.execute(select(OutboxEmail).where(OutboxEmail.id == email_id))).scalar_one()


async def _left_to_deliver(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> DeliverEmail:
    """The requested email once sending it at once met a busy relay: the delivery activity's to send."""
    written = await _requested(sessions, tenant, settings)
    smtp.inbox.refusals.append("421 4.3.2 try again later")
    [email_id] = await postman(settings, sessions).send_at_once(written.email_ids, written_now=written.written_now())
    return DeliverEmail(email_id=email_id)


async def test_sending_at_once_lets_go_of_what_the_relay_did_not_take(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    written = await _requested(sessions, tenant, settings)
    before = await _row(sessions, written.email_ids[0])
    smtp.inbox.refusals.append("421 4.3.2 try again later")
    left = await postman(settings, sessions).send_at_once(written.email_ids, written_now=written.written_now())
    after = await _row(sessions, written.email_ids[0])
    assert before.claimed_by is not None and before.claimed_until is not None  # written claimed for its writer
    assert (left, after.status, after.attempts, after.claimed_by, after.claimed_until) == (
        written.email_ids,
        "pending",
        1,
        None,
        None,
    )


async def test_two_deliveries_of_one_email_at_once_send_it_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    data = await _left_to_deliver(sessions, tenant, settings, smtp)
    smtp.inbox.slow_seconds = 1.0  # both attempts would be at the relay together
    mailer = EmailActivities(postman(settings, sessions))
    outcomes = await asyncio.gather(
        ActivityEnvironment().run(mailer.deliver_email, data),
        ActivityEnvironment().run(mailer.deliver_email, data),
        return_exceptions=True,
    )
    [delivered] = [o for o in outcomes if isinstance(o, DeliveryResult)]
    [held] = [o for o in outcomes if isinstance(o, ApplicationError)]
    assert held.next_retry_delay is not None
    waits = held.next_retry_delay.total_seconds()
    row = await _row(sessions, data.email_id)
    assert (delivered.status, held.type, held.non_retryable, 55 <= waits <= 62) == (
        EmailStatus.SENT,
        "EmailHeld",
        False,
        True,
    )
    assert (len(smtp.inbox.to(tenant.partner_manager.email)), row.status, row.attempts) == (1, "sent", 2)


async def test_a_retry_overlapping_the_writer_leaves_its_messages_to_it(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    written = await _requested(sessions, tenant, settings)
    mail = postman(settings, sessions)
    retried = await mail.send_at_once(written.email_ids)  # a second attempt while the writer's still runs
    received_meanwhile = len(smtp.inbox.messages)
    by_writer = await mail.send_at_once(written.email_ids, written_now=written.written_now())
    assert (retried, received_meanwhile, by_writer, len(smtp.inbox.messages)) == (written.email_ids, 0, [], 1)


async def _claimed_until(sessions: async_sessionmaker[AsyncSession], email_id: uuid.UUID, seconds: float) -> None:
    """Its claim lapses `seconds` from now (the time a dead writer's claim has left)."""
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    async with sessions.begin() as session:
        await session.execute(update(OutboxEmail).where(OutboxEmail.id == email_id).values(claimed_until=until))


async def _held_for(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, seconds: float
) -> uuid.UUID:
    """The requested email, its writer dead after its commit with `seconds` of its claim left."""
    [email_id] = (await _requested(sessions, tenant, settings)).email_ids
    await _claimed_until(sessions, email_id, seconds)
    return email_id


async def test_a_delivery_waits_out_a_claim_that_ends_soon_and_then_sends(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    """The writer died after its commit: the delivery waits for its claim to lapse, running (a test server that
    skips idle time cannot skip this), then sends."""
    email_id = await _held_for(sessions, tenant, settings, 1.5)
    started = time.monotonic()
    mailer = EmailActivities(postman(settings, sessions))
    result = await ActivityEnvironment().run(mailer.deliver_email, DeliverEmail(email_id=email_id))
    waited = time.monotonic() - started
    assert (result.status, len(smtp.inbox.messages), (await _row(sessions, email_id)).status) == (
        EmailStatus.SENT,
        1,
        "sent",
    )
    assert 1.4 <= waited < 10


async def test_a_claim_held_longer_is_tried_again_when_it_lapses(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    email_id = await _held_for(sessions, tenant, settings, 50)
    mailer = EmailActivities(postman(settings, sessions))
    with pytest.raises(ApplicationError) as held:
        await ActivityEnvironment().run(mailer.deliver_email, DeliverEmail(email_id=email_id))
    assert held.value.next_retry_delay is not None
    assert 48 <= held.value.next_retry_delay.total_seconds() <= 52
    assert "being sent by another attempt" in str(held.value) and smtp.inbox.messages == []


async def test_the_last_delivery_attempt_leaves_a_held_message_to_its_holder(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    """Not failed: the holder may be sending it right now, and records what becomes of it."""
    email_id = await _held_for(sessions, tenant, settings, 50)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=3)
    result = await env.run(
        EmailActivities(postman(settings, sessions)).deliver_email, DeliverEmail(email_id=email_id, max_attempts=3)
    )
    row = await _row(sessions, email_id)
    assert (result.status, row.status, row.attempts, smtp.inbox.messages) == (EmailStatus.PENDING, "pending", 0, [])


async def test_a_writer_late_to_send_renews_its_claim_or_leaves_what_another_took(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    """Time passed between writing and sending (a slow commit, a slow call): the writer's claim no longer
    outlasts sending and recording. Still its own, it is renewed and the message sent; lapsed and taken by a
    retry meanwhile, the message is the retry's."""
    await factories.person(sessions, Role.PARTNER_MANAGER, partner_id=tenant.partner_id)
    written = await _requested(sessions, tenant, settings)
    kept, taken = written.email_ids
    await _claimed_until(sessions, kept, 3)
    await _claimed_until(sessions, taken, -1)
    retry = await outbox.claim(sessions, [taken], lasting=outbox.WRITER_CLAIM)
    for email in written.written_now():  # what the writer holds: as written, time having passed
        email.claimed_until = datetime.now(UTC) + timedelta(seconds=3 if email.id == kept else -1)
    left = await postman(settings, sessions).send_at_once(written.email_ids, written_now=written.written_now())
    renewed = await _row(sessions, kept)
    assert ([e.id for e in retry.mine], left, len(smtp.inbox.messages)) == ([taken], [taken], 1)
    assert (renewed.status, (await _row(sessions, taken)).status) == ("sent", "pending")


async def test_the_writer_sends_what_it_wrote_and_claims_what_an_earlier_attempt_left(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, settings: Settings, smtp: SmtpServer
) -> None:
    """Notifying again after a second partner manager joined: the first manager's message is an earlier
    attempt's (left pending by a busy relay), the second's is written now."""
    order = await _requested(sessions, tenant, settings)
    notice = OrderNotice(order_id=order.order_id, event=OrderEvent.REMINDER, at=NOW)
    first = await notices.notify_order_event(sessions, notice, mail_from=settings.mail_from)
    smtp.inbox.refusals.append("421 4.3.2 try again later")
    mail = postman(settings, sessions)
    assert await mail.send_at_once(first.email_ids, written_now=first.written_now()) == first.email_ids
    newcomer = await factories.person(sessions, Role.PARTNER_MANAGER, partner_id=tenant.partner_id)
    again = await notices.notify_order_event(sessions, notice, mail_from=settings.mail_from)
    left = await mail.send_at_once(again.email_ids, written_now=again.written_now())
    received = [len(smtp.inbox.to(person.email, about="")) for person in (tenant.partner_manager, newcomer)]
    assert (len(again.email_ids), len(again.written_now()), left, received) == (2, 1, [], [1, 1])
