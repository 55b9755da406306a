"""An order's workflow cancelled by hand (the Web UI, `temporal workflow cancel`) leaves no order waiting with
nothing to decide it: a transaction in flight ends first, then a still requested order is cancelled by the system,
both sides are told, and the workflow ends cancelled (patch `close-cancelled-orders`). The time-skipping server
(or the dev server where real time must pass), real activities, database and SMTP server."""

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from api import order_workflows
from db.models import AuditEvent, Customer, LicenceOrder, Partner
from licensing.config import Settings
from licensing.temporal import build_worker
from payloads.common import Role
from payloads.orders import CancelRequest, OrderRegistered
from rules.errors import Conflict
from rules.orders import OrderStatus
from tests import factories
from tests.ordering import OrderHandle, Orders, actor, end_term, order_id, reject_unseen
from tests.smtp_server import SmtpServer, free_port
from workflows.order_patches import CANCELLED_BY_OPERATOR, CLOSE_CANCELLED_ORDERS


async def _ends_cancelled(orders: Orders, handle: OrderHandle) -> None:
    orders.started.remove(handle)  # it ends here: nothing left for the clean-up
    try:
        async with asyncio.timeout(60):
            await handle.result()
    except WorkflowFailureError as ended:
        assert isinstance(ended.cause, CancelledError)
    except TimeoutError:
        await handle.terminate("the test gave up waiting")
        pytest.fail("the cancelled order's workflow did not end")
    else:
        pytest.fail("the workflow ended as if it had not been cancelled")


async def _order(sessions: async_sessionmaker[AsyncSession], handle: OrderHandle) -> LicenceOrder | None:
    async with sessions() as session:
        return await session.get(LicenceOrder, order_id(handle))


async def test_a_waiting_order_whose_workflow_is_cancelled_is_cancelled_by_the_system(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], smtp: SmtpServer, tenant: factories.Tenant
) -> None:
    handle = await orders.request(tenant, 3)
    await handle.cancel()
    await _ends_cancelled(orders, handle)

    order = await _order(sessions, handle)
    assert order is not None
    assert (order.status, order.decided_by_id, order.reject_reason) == ("cancelled", None, CANCELLED_BY_OPERATOR)
    async with sessions() as session:
        stock = (await session.get_one(Partner, tenant.partner_id)).licence_stock
        actions = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.actor_role).where(AuditEvent.subject_id == order.id)
            )
        ).all()
    assert stock == 100
    assert ("licence_order.cancelled", "system") in actions
    # Both sides hear of it once: the customer did not cancel it.
    for person in (tenant.customer_manager, tenant.partner_manager):
        [email] = smtp.inbox.to(person.email, about=" was cancelled")
        assert CANCELLED_BY_OPERATOR in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    history = [event.SerializeToString() async for event in handle.fetch_history_events()]
    assert any(CLOSE_CANCELLED_ORDERS.encode() in event for event in history)  # the patch's marker


async def test_an_order_cancelled_while_it_is_being_saved_is_saved_then_cancelled(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    """The saving transaction is not abandoned (it may commit after all: on PostgreSQL a statement waiting for a
    lock is not interrupted): the workflow waits for it, then cancels the order it saved."""
    async with sessions.begin() as session:
        # The customer's row locked (on SQLite, the database's write lock) holds the saving transaction waiting,
        # its workflow task renewed meanwhile: the cancellation reaches the workflow with a renewal.
        await session.execute(update(Customer).where(Customer.id == tenant.customer_id).values(name=Customer.name))
        handle = await orders.request(tenant, 1, registered=False)
        await asyncio.sleep(2)
        await handle.cancel()
        await asyncio.sleep(3)
    await _ends_cancelled(orders, handle)
    order = await _order(sessions, handle)
    assert order is not None and order.status == OrderStatus.CANCELLED.value


async def test_a_decision_in_flight_when_the_workflow_is_cancelled_stands(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], smtp: SmtpServer, tenant: factories.Tenant
) -> None:
    """An assignment running when the cancellation arrives finishes; the order is assigned, not cancelled, and
    the workflow completes with it."""
    handle = await orders.request(tenant, 2)
    async with sessions.begin() as session:
        # The partner's row locked holds the assignment's stock debit (on SQLite, the write lock all of it).
        await session.execute(update(Partner).where(Partner.id == tenant.partner_id).values(name=Partner.name))
        assigning = asyncio.create_task(orders.assign(handle, tenant))
        await asyncio.sleep(2)
        await handle.cancel()
        await asyncio.sleep(3)
    outcome = await asyncio.wait_for(assigning, 60)
    assert outcome.status is OrderStatus.ASSIGNED
    assert (await asyncio.wait_for(handle.result(), 60)) == outcome
    orders.started.remove(handle)
    assert outcome.block_id is not None
    order = await _order(sessions, handle)
    assert order is not None and order.status == OrderStatus.ASSIGNED.value
    assert smtp.inbox.about(" was cancelled") == []
    await end_term(orders.env, outcome.block_id)


async def test_an_order_cancelled_while_its_emails_are_retried_is_cancelled(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """While the run awaits an activity (here the "requested" emails, retried: the relay is down), the
    cancellation reaches it as that activity's cancellation: the order is cancelled all the same. (Dev server: on
    the time-skipping server the retries' backoff would be skipped through.)"""
    down = settings.model_copy(update={"smtp_port": free_port(), "smtp_timeout_seconds": 2.0})
    tenant = await factories.tenant(sessions)
    orders = Orders(dev_server, down)
    async with build_worker(dev_server.client, down, sessions):
        handle = await orders.request(tenant, 1)
        await asyncio.sleep(3)  # the run now awaits `deliver_email` activities, between their attempts
        await handle.cancel()
        order = await _order(sessions, handle)
        for _ in range(100):
            if order is not None and order.status != OrderStatus.REQUESTED.value:
                break
            await asyncio.sleep(0.2)
            order = await _order(sessions, handle)
        # Its own emails cannot go out either: the run goes on retrying them, and ends cancelled once they do.
        running = (await handle.describe()).status
        await handle.terminate("the test is over")
    assert order is not None and order.status == OrderStatus.CANCELLED.value
    assert running is WorkflowExecutionStatus.RUNNING


async def test_a_request_refused_while_its_workflow_is_cancelled_answers_with_the_refusal(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Saving the request is refused (the customer's one waiting place is taken) after the workflow was
    cancelled: the requester still hears why, not that the workflow went away."""
    limited = settings.model_copy(update={"max_open_orders_per_customer": 1})
    tenant = await factories.tenant(sessions)

    async def request(new_id: uuid.UUID) -> OrderRegistered | None:
        return await order_workflows.request_order(
            dev_server.client,
            limited,
            order_id=new_id,
            partner_id=tenant.partner_id,
            customer_id=tenant.customer_id,
            quantity=1,
            actor=actor(tenant.customer_manager, Role.CUSTOMER_MANAGER),
        )

    async with build_worker(dev_server.client, limited, sessions):
        waiting = await request(uuid.uuid4())
        second = uuid.uuid4()
        async with sessions.begin() as session:
            # The saving transaction waits on the customer's row past its run's first workflow task (10 s).
            await session.execute(update(Customer).where(Customer.id == tenant.customer_id).values(name=Customer.name))
            answer = asyncio.create_task(request(second))
            await asyncio.sleep(12)
            handle = dev_server.client.get_workflow_handle(f"licence-order-{second}")
            await handle.cancel()
            await asyncio.sleep(1)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await asyncio.wait_for(answer, 40)
        assert waiting is not None
        cancelled = CancelRequest(actor=actor(tenant.customer_manager, Role.CUSTOMER_MANAGER))
        await dev_server.client.get_workflow_handle(f"licence-order-{waiting.order_id}").execute_update(
            "cancel", cancelled
        )
    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.type == Conflict.type


async def test_a_decision_stored_unseen_stands_when_the_workflow_is_cancelled(
    orders: Orders,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp: SmtpServer,
    tenant: factories.Tenant,
) -> None:
    """The order was rejected by an update the server lost (its transaction committed, the run never saw it);
    then the workflow is cancelled: cancelling the order is refused as already decided, and the run takes on the
    stored rejection, sends its email and completes with it."""
    handle = await orders.request(tenant, 2)
    await reject_unseen(sessions, settings, tenant, order_id(handle), reason="Out of budget", at=datetime.now(UTC))
    await handle.cancel()
    outcome = await asyncio.wait_for(handle.result(), 60)
    orders.started.remove(handle)
    assert outcome is not None and outcome.status is OrderStatus.REJECTED
    [email] = smtp.inbox.to(tenant.customer_manager.email, about="not approved")
    assert "Out of budget" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert smtp.inbox.about(" was cancelled") == []
