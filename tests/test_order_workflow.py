"""The order workflow on the time-skipping test server, with the real activities, database and SMTP server."""

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from db.models import Licence, LicenceBlock, LicenceOrder, OutboxEmail, Partner
from licensing.config import Settings
from payloads.common import Role
from payloads.orders import (
    AssignRequest,
    RejectRequest,
)
from rules.durations import add_duration, parse_duration
from rules.orders import OrderStatus
from tests import factories
from tests.ordering import Orders, actor, decided, order_id
from tests.smtp_server import SmtpServer
from workflows.order import LicenceOrderWorkflow


async def _row(sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID) -> LicenceOrder:
    async with sessions() as session:
        return await session.get_one(LicenceOrder, order_id)


async def _stock(sessions: async_sessionmaker[AsyncSession], partner_id: uuid.UUID) -> int:
    async with sessions() as session:
        return (await session.get_one(Partner, partner_id)).licence_stock


async def test_assign_debits_stock_creates_the_block_and_emails_the_customer(
    orders: Orders,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 5)
    outcome = await orders.assign(handle, tenant)
    assert (await decided(handle)).status is OrderStatus.ASSIGNED
    order = await _row(sessions, order_id(handle))
    assert outcome.expires_at == add_duration(order.decided_at, parse_duration("P12M"))  # type: ignore[arg-type]
    async with sessions() as session:
        licences = (await session.execute(select(Licence).where(Licence.block_id == outcome.block_id))).scalars().all()
    assert (await _stock(sessions, tenant.partner_id), len(licences)) == (95, 5)
    # Only the "assigned" email: the time-skipping server's clock is shared, and may already have carried the
    # new term to its reminders and end while this test awaited its order.
    assigned = smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")
    assert [str(m["Subject"]) for m in assigned] == ["5 licences assigned to " + _name(smtp, tenant)]


async def test_an_orders_own_transactions_run_as_local_activities(orders: Orders, tenant: factories.Tenant) -> None:
    """Saving and deciding an order are short transactions: run in the worker that runs the workflow task and
    recorded as markers, they cost the server no activity task each (docs/changing-workflows.md)."""
    handle = await orders.request(tenant, 1)
    await orders.assign(handle, tenant)
    await decided(handle)
    events = [event async for event in handle.fetch_history_events()]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.activity_task_scheduled_event_attributes.activity_type.name
    ]
    markers = [
        e.marker_recorded_event_attributes.marker_name for e in events if e.HasField("marker_recorded_event_attributes")
    ]
    assert (scheduled, markers.count("core_local_activity")) == ([], 2)


def _name(smtp: SmtpServer, tenant: factories.Tenant) -> str:
    request = smtp.inbox.to(tenant.partner_manager.email)[0]
    return str(request["Subject"]).split(" requests ")[0]


async def test_the_partner_is_told_of_a_new_request(
    orders: Orders,
    settings: Settings,
    smtp: SmtpServer,
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 3)
    await orders.cancel(handle, tenant)
    await handle.result()
    subjects = [str(m["Subject"]) for m in smtp.inbox.to(tenant.partner_manager.email)]
    assert subjects[0].endswith("requests 3 licences")


async def test_reject_emails_the_reason_and_moves_no_stock(
    orders: Orders,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 5)
    await handle.execute_update(
        LicenceOrderWorkflow.reject,
        RejectRequest(actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER), reason="Budget frozen until Q3"),
    )
    assert (await decided(handle)).status is OrderStatus.REJECTED
    [email] = smtp.inbox.to(tenant.customer_manager.email)
    assert "Budget frozen until Q3" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert await _stock(sessions, tenant.partner_id) == 100


async def test_cancel_closes_the_order_without_a_block(
    orders: Orders,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 5)
    await orders.cancel(handle, tenant)
    await handle.result()
    async with sessions() as session:
        blocks = (await session.execute(select(LicenceBlock).where(LicenceBlock.order_id == order_id(handle)))).all()
    assert ((await _row(sessions, order_id(handle))).status, blocks) == ("cancelled", [])


async def test_short_stock_refuses_the_assignment_and_the_order_stays_requested(
    orders: Orders,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 150)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await orders.assign(handle, tenant)
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError)
    assert (cause.type, cause.message) == (
        "InsufficientStock",
        "the partner's licence stock is 100, 50 short of the 150 licences ordered; buy more stock or reject the order",
    )
    assert ((await _row(sessions, order_id(handle))).status, await _stock(sessions, tenant.partner_id)) == (
        "requested",
        100,
    )


async def test_after_a_refusal_for_short_stock_a_purchase_lets_the_assignment_through(
    orders: Orders,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 150)
    assign = AssignRequest(actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(LicenceOrderWorkflow.assign, assign)
    await factories.credit(sessions, tenant.partner_id, 50)
    await handle.execute_update(LicenceOrderWorkflow.assign, assign)
    assert await _stock(sessions, tenant.partner_id) == 0


async def test_an_assigned_order_refuses_a_second_decision(
    orders: Orders,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    # The relay takes the "requested" email but not yet the "assigned" one, so the workflow is still open
    # (retrying that delivery) when the second decision arrives.
    smtp.inbox.refusals.extend(["250 OK", "421 4.3.2 try again later"])
    handle = await orders.request(tenant, 5)
    assign = AssignRequest(actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER))
    await handle.execute_update(LicenceOrderWorkflow.assign, assign)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(LicenceOrderWorkflow.reject, RejectRequest(actor=assign.actor, reason="late"))
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == "OrderNotRequested"
    assert (await decided(handle)).status is OrderStatus.ASSIGNED
    assigned = smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")
    assert (await _stock(sessions, tenant.partner_id), len(assigned)) == (95, 1)


async def test_a_waiting_order_reminds_the_partner_every_two_days(
    orders: Orders,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 5)
    await orders.env.sleep(timedelta(days=4, hours=1))
    await orders.cancel(handle, tenant)
    await handle.result()
    reminders = [
        str(m["Subject"]) for m in smtp.inbox.to(tenant.partner_manager.email) if "Reminder" in str(m["Subject"])
    ]
    assert len(reminders) == 2


async def test_every_email_is_recorded_as_sent_once(
    orders: Orders,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    handle = await orders.request(tenant, 5)
    await orders.assign(handle, tenant)
    await handle.result()
    async with sessions() as session:
        rows = (
            await session.execute(
                select(OutboxEmail.status, OutboxEmail.attempts).where(
                    OutboxEmail.key.like(f"order-{order_id(handle)}:%")
                )
            )
        ).all()
    assert sorted(rows) == [("sent", 1), ("sent", 1)]
