"""Every activity is safe to retry: run twice with the same input, it changes nothing twice."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.email import EmailActivities
from activities.orders import OrderActivities
from db import notices, orders
from db.models import AuditEvent, Licence, LicenceOrder, Notification, OutboxEmail, Partner
from licensing.config import Settings
from licensing.temporal import postman
from payloads.common import Role
from payloads.email import DeliverEmail, EmailStatus
from payloads.orders import AssignOrder, CloseOrder, LicenceTerm, OrderEvent, OrderNotice
from rules.errors import OrderNotRequested
from tests import factories
from tests.ordering import actor, new_order, rejection
from tests.smtp_server import SmtpServer
from workflows.block import block_workflow_id

NOW = datetime(2026, 11, 27, 9, tzinfo=UTC)
MAIL_FROM = "Partner Licensing <licensing@example.com>"


async def _persisted(sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, quantity: int) -> uuid.UUID:
    data = new_order(tenant, quantity, at=NOW)
    await orders.persist_order(sessions, data)
    await orders.persist_order(sessions, data)
    return data.order_id


async def test_an_attempt_retried_while_the_first_saves_the_order_at_the_waiting_limit_is_not_refused(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    """The first attempt saves the customer's last allowed waiting order; its retry, running at the same time,
    finds that order rather than counting it against the limit."""
    data = new_order(tenant, 2, at=NOW).model_copy(update={"waiting_limit": 1})
    first, retried = await asyncio.gather(orders.persist_order(sessions, data), orders.persist_order(sessions, data))
    assert (first.order_id, retried.order_id) == (data.order_id, data.order_id)
    assert (
        await factories.scalar(
            sessions,
            select(func.count()).select_from(LicenceOrder).where(LicenceOrder.customer_id == tenant.customer_id),
        )
        == 1
    )


def _assignment(
    tenant: factories.Tenant, order_id: uuid.UUID, *, notify: bool = False, start_term: LicenceTerm | None = None
) -> AssignOrder:
    """The partner manager's assignment of the order, now, for twelve months."""
    return AssignOrder(
        order_id=order_id,
        actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER),
        assigned_at=NOW,
        expires_at=NOW + timedelta(days=365),
        notify=notify,
        start_term=start_term,
    )


def _rejection(tenant: factories.Tenant, order_id: uuid.UUID, reason: str, *, notify: bool = False) -> CloseOrder:
    """The partner manager's rejection of the order, now."""
    return rejection(tenant, order_id, reason, at=NOW, notify=notify)


async def test_persisting_twice_saves_one_order_and_one_audit_event(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    order_id = await _persisted(sessions, tenant, 3)
    counted = (
        await factories.scalar(
            sessions, select(func.count()).select_from(LicenceOrder).where(LicenceOrder.id == order_id)
        ),
        await factories.scalar(
            sessions, select(func.count()).select_from(AuditEvent).where(AuditEvent.subject_id == order_id)
        ),
    )
    assert counted == (1, 1)


async def test_assigning_twice_moves_the_stock_and_makes_the_licences_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    order_id = await _persisted(sessions, tenant, 4)
    data = _assignment(tenant, order_id)
    first, second = await orders.assign_order(sessions, data), await orders.assign_order(sessions, data)
    licences = await factories.scalar(
        sessions, select(func.count()).select_from(Licence).where(Licence.customer_id == tenant.customer_id)
    )
    stock = await factories.scalar(sessions, select(Partner.licence_stock).where(Partner.id == tenant.partner_id))
    assert (second == first, licences, stock) == (True, 4, 96)


async def test_a_decision_run_again_later_by_the_same_update_is_the_same_decision(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    """A local activity lost with its worker's workflow task runs again from the same update at a later time: its
    key says it is the same assignment (done once, answered as it was done); another update's is refused."""
    order_id = await _persisted(sessions, tenant, 4)
    first = _assignment(tenant, order_id, notify=True).model_copy(update={"decision_key": "update-1"})
    later = first.model_copy(update={"assigned_at": NOW + timedelta(seconds=12)})
    done = await orders.assign_order(sessions, first, mail_from=MAIL_FROM)
    again = await orders.assign_order(sessions, later, mail_from=MAIL_FROM)
    with pytest.raises(OrderNotRequested, match="already assigned"):
        await orders.assign_order(sessions, later.model_copy(update={"decision_key": "update-2"}), mail_from=MAIL_FROM)
    licences = await factories.scalar(
        sessions, select(func.count()).select_from(Licence).where(Licence.customer_id == tenant.customer_id)
    )
    stock = await factories.scalar(sessions, select(Partner.licence_stock).where(Partner.id == tenant.partner_id))
    assert (again == done, again.decided_at, licences, stock, len(await _emails_of(sessions, order_id))) == (
        True,
        NOW,
        4,
        96,
        1,
    )


async def test_a_rejection_run_again_later_by_the_same_update_rejects_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    order_id = await _persisted(sessions, tenant, 4)
    first = _rejection(tenant, order_id, "no budget", notify=True).model_copy(update={"decision_key": "update-1"})
    later = first.model_copy(update={"decided_at": NOW + timedelta(seconds=12)})
    done = await orders.close_order(sessions, first, mail_from=MAIL_FROM)
    again = await orders.close_order(sessions, later, mail_from=MAIL_FROM)
    with pytest.raises(OrderNotRequested, match="already rejected"):
        await orders.close_order(sessions, later.model_copy(update={"decision_key": "update-2"}), mail_from=MAIL_FROM)
    assert (again == done, again.decided_at, len(await _emails_of(sessions, order_id))) == (True, NOW, 1)


async def test_rejecting_twice_rejects_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    order_id = await _persisted(sessions, tenant, 4)
    data = _rejection(tenant, order_id, "no budget")
    await orders.close_order(sessions, data)
    await orders.close_order(sessions, data)
    events = await factories.scalar(
        sessions,
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.subject_id == order_id, AuditEvent.action == "licence_order.rejected"),
    )
    assert events == 1


async def test_notifying_twice_writes_each_notice_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    order_id = await _persisted(sessions, tenant, 2)
    notice = OrderNotice(order_id=order_id, event=OrderEvent.REQUESTED, at=NOW)
    first = await notices.notify_order_event(sessions, notice, mail_from=MAIL_FROM)
    second = await notices.notify_order_event(sessions, notice, mail_from=MAIL_FROM)
    in_app = await factories.scalar(
        sessions,
        select(func.count()).select_from(Notification).where(Notification.user_id == tenant.partner_manager.id),
    )
    assert (len(first.email_ids), second.email_ids == first.email_ids, in_app) == (1, True, 1)


async def test_delivering_twice_sends_one_message(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, smtp: SmtpServer, settings: Settings
) -> None:
    order_id = await _persisted(sessions, tenant, 2)
    written = await notices.notify_order_event(
        sessions, OrderNotice(order_id=order_id, event=OrderEvent.REQUESTED, at=NOW), mail_from=MAIL_FROM
    )
    smtp.inbox.refusals.append("421 4.3.2 try again later")  # sending at once fails: the delivery activity's turn
    [email_id] = await postman(settings, sessions).send_at_once(written.email_ids, written_now=written.written_now())
    mailer = EmailActivities(postman(settings, sessions))
    env = ActivityEnvironment()
    results = [await env.run(mailer.deliver_email, DeliverEmail(email_id=email_id)) for _ in range(2)]
    assert ([r.status for r in results], len(smtp.inbox.to(tenant.partner_manager.email))) == (
        [EmailStatus.SENT, EmailStatus.SENT],
        1,
    )


# Orders since the "notices-with-decisions" patch: each decision writes its notices in its own transaction.


async def _emails_of(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> list[tuple[str, str]]:
    async with sessions() as session:
        found = await session.execute(
            select(OutboxEmail.key, OutboxEmail.subject)
            .where(OutboxEmail.key.like(f"order-{order_id}:%"))
            .order_by(OutboxEmail.key)
        )
        return [(key, subject) for key, subject in found.all()]


async def test_an_order_saved_twice_with_its_notices_writes_them_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    data = new_order(tenant, 3, at=NOW, notify=True)
    first = await orders.persist_order(sessions, data, mail_from=MAIL_FROM)
    second = await orders.persist_order(sessions, data, mail_from=MAIL_FROM)
    emails = await _emails_of(sessions, data.order_id)
    assert (len(first.email_ids), second.email_ids == first.email_ids, len(emails)) == (1, True, 1)
    assert emails[0][0] == f"order-{data.order_id}:requested:{tenant.partner_manager.id}"


async def test_notices_mistakenly_written_as_fresh_twice_fail_instead_of_doubling(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    """`fresh` skips looking for earlier notices; the keys' unique constraint still stands behind it."""
    order_id = await _persisted(sessions, tenant, 2)
    notice = OrderNotice(order_id=order_id, event=OrderEvent.REQUESTED, at=NOW)

    async def write() -> None:
        async with sessions.begin() as session:
            order = await session.get_one(LicenceOrder, order_id)
            await notices.write_order_notices(session, order, notice, mail_from=MAIL_FROM, fresh=True)

    await write()
    with pytest.raises(IntegrityError):
        await write()
    assert len(await _emails_of(sessions, order_id)) == 1


async def test_assigning_twice_with_notices_and_the_term_emails_and_starts_the_term_once(
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    smtp: SmtpServer,
) -> None:
    order_id = await _persisted(sessions, tenant, 4)
    term = LicenceTerm(
        partner_id=tenant.partner_id, customer_id=tenant.customer_id, quantity=4, renewal_reminders=["P30D"]
    )
    data = _assignment(tenant, order_id, notify=True, start_term=term)
    mail = postman(settings, sessions)
    assigning = OrderActivities(sessions, mail, client=dev_server.client, task_queue=settings.task_queue)
    env = ActivityEnvironment()
    first = await env.run(assigning.assign_order, data)
    second = await env.run(assigning.assign_order, data)
    assert first.block_id is not None
    term_workflow = dev_server.client.get_workflow_handle(block_workflow_id(first.block_id))
    described = await term_workflow.describe()
    await term_workflow.terminate("test over")
    emails = await _emails_of(sessions, order_id)
    assert (second == first, len(first.email_ids), len(emails)) == (True, 1, 1)
    assert emails[0][0] == f"order-{order_id}:assigned:{tenant.customer_manager.id}"
    # Sent at once by the first attempt; the second found it sent: one message, nothing left to deliver.
    assert (first.emails_due(), len(smtp.inbox.to(tenant.customer_manager.email))) == ([], 1)
    # The second attempt found the term running (one run: the id's first run is this one).
    assert described.status == WorkflowExecutionStatus.RUNNING
    assert described.raw_description.workflow_execution_info.first_run_id in ("", described.run_id)


async def test_rejecting_twice_with_notices_emails_the_reason_once(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    order_id = await _persisted(sessions, tenant, 4)
    data = _rejection(tenant, order_id, "no budget this quarter", notify=True)
    first = await orders.close_order(sessions, data, mail_from=MAIL_FROM)
    second = await orders.close_order(sessions, data, mail_from=MAIL_FROM)
    async with sessions() as session:
        bodies = (
            await session.execute(select(OutboxEmail.text_body).where(OutboxEmail.key.like(f"order-{order_id}:%")))
        ).scalars()
        texts = list(bodies)
    assert (second == first, len(first.email_ids), len(texts)) == (True, 1, 1)
    assert "no budget this quarter" in texts[0]
