"""A decision whose update the server lost after its transaction committed: a local activity is recorded only
with its workflow task, so a server restart before that task completed leaves the order decided in the database
while its workflow still waits. The workflow takes the stored decision on, as the next decision is refused or
before it reminds anyone, on the time-skipping test server with the real activities, database and SMTP server."""

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from db import orders as stored_orders
from db.models import LicenceBlock, Partner
from licensing.config import Settings
from payloads.common import Role
from payloads.orders import AssignOrder, OrderOutcome, RejectRequest
from rules.durations import add_duration, parse_duration
from rules.orders import OrderStatus
from tests import factories
from tests.ordering import OrderHandle, Orders, actor, claims_lapsed, decided, order_id, reject_unseen
from tests.smtp_server import SmtpServer
from workflows.block import block_workflow_id
from workflows.order import LicenceOrderWorkflow


async def _assigned_unseen(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], handle: OrderHandle, tenant: factories.Tenant
) -> OrderOutcome:
    """What the lost update's local activity committed: the assignment, its notices written, none sent yet."""
    now = await orders.env.get_current_time()
    data = AssignOrder(
        order_id=order_id(handle),
        actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER),
        assigned_at=now,
        expires_at=add_duration(now, parse_duration(orders.settings.licence_term)),
        notify=True,
        decision_key="an-update-the-server-lost",
    )
    outcome = await stored_orders.assign_order(sessions, data, mail_from=orders.settings.mail_from)
    await claims_lapsed(sessions, outcome)
    return outcome


async def _decided(handle: OrderHandle) -> OrderOutcome:
    """The order's end, which a run that never takes the stored decision on would not reach."""
    try:
        async with asyncio.timeout(60):
            return await decided(handle)
    except TimeoutError:
        await handle.terminate("the test gave up waiting")  # or the fixture's clean-up would wait for it as well
        raise


async def _stock(sessions: async_sessionmaker[AsyncSession], partner_id: uuid.UUID) -> int:
    async with sessions() as session:
        return (await session.get_one(Partner, partner_id)).licence_stock


async def _term_running(orders: Orders, block_id: uuid.UUID) -> bool:
    term = await orders.env.client.get_workflow_handle(block_workflow_id(block_id)).describe()
    return term.status == WorkflowExecutionStatus.RUNNING


async def test_a_decision_refused_as_already_made_takes_the_made_one_on(
    orders: Orders, settings: Settings, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    handle = await orders.request(tenant, 3)
    stored = await _assigned_unseen(orders, sessions, handle, tenant)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            LicenceOrderWorkflow.reject,
            RejectRequest(actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER), reason="changed our mind"),
        )
    assert isinstance(refused.value.cause, ApplicationError)
    assert (refused.value.cause.type, refused.value.cause.message) == (
        "OrderNotRequested",
        "the order is already assigned; only a requested order can be rejected",
    )
    outcome = await _decided(handle)
    assert (outcome.status, outcome.block_id, outcome.expires_at) == (
        OrderStatus.ASSIGNED,
        stored.block_id,
        stored.expires_at,
    )
    assert outcome.block_id is not None and await _term_running(orders, outcome.block_id)
    assigned = smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")
    assert (await _stock(sessions, tenant.partner_id), len(assigned)) == (97, 1)
    assert await handle.query(LicenceOrderWorkflow.status) is OrderStatus.ASSIGNED


async def test_a_waiting_order_looks_for_a_decision_before_it_reminds(
    orders: Orders, settings: Settings, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    handle = await orders.request(tenant, 2)
    stored = await _assigned_unseen(orders, sessions, handle, tenant)
    await orders.env.sleep(timedelta(days=2, hours=1))  # past the first reminder (P2D)
    outcome = await _decided(handle)
    assert (outcome.status, outcome.block_id) == (OrderStatus.ASSIGNED, stored.block_id)
    reminders = [m for m in smtp.inbox.to(tenant.partner_manager.email) if "Reminder" in str(m["Subject"])]
    assigned = smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")
    assert (len(reminders), len(assigned), await _stock(sessions, tenant.partner_id)) == (0, 1, 98)
    async with sessions() as session:
        blocks = (await session.execute(select(LicenceBlock).where(LicenceBlock.order_id == order_id(handle)))).all()
    assert len(blocks) == 1


async def test_a_waiting_order_takes_on_a_stored_rejection_with_its_email(
    orders: Orders, settings: Settings, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    handle = await orders.request(tenant, 2)
    now = await orders.env.get_current_time()
    await reject_unseen(sessions, settings, tenant, order_id(handle), reason="no budget this quarter", at=now)
    await orders.env.sleep(timedelta(days=2, hours=1))  # past the first reminder (P2D)
    outcome = await _decided(handle)
    assert (outcome.status, outcome.decided_at) == (OrderStatus.REJECTED, now)
    [email] = smtp.inbox.to(tenant.customer_manager.email)  # the rejection, once
    assert "no budget this quarter" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert await _stock(sessions, tenant.partner_id) == 100
