"""A waiting order whose workflow was terminated by hand (the Web UI, `temporal workflow terminate`) can still be
decided: a decision sent through the API starts a run for it and is its first step, and `licensing reconcile`
(also run at every worker start) starts one for each waiting order without a running workflow. The Temporal dev
server, a real worker, database and SMTP server."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from db.models import LicenceOrder
from licensing.config import Settings
from licensing.orders import order_workflow_id, resume_order, start_again
from licensing.reconcile import reconcile
from payloads.orders import OrderOutcome
from rules.orders import OrderStatus
from tests.factories import Tenant
from tests.ordering import reject_unseen
from tests.smtp_server import SmtpServer
from tests.test_api_orders import eventually, request_licences, stock


async def _terminated(env: WorkflowEnvironment, order: dict[str, Any]) -> str:
    """Terminate the order's workflow as an operator would; the run that ended."""
    handle = env.client.get_workflow_handle(order_workflow_id(uuid.UUID(order["id"])))
    await handle.terminate("an operator terminated it")
    return (await handle.describe()).run_id


async def _order(sessions: async_sessionmaker[AsyncSession], order: dict[str, Any]) -> LicenceOrder:
    async with sessions() as session:
        return await session.get_one(LicenceOrder, uuid.UUID(order["id"]))


async def test_a_decision_reaches_an_order_whose_workflow_was_terminated(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant, smtp: SmtpServer
) -> None:
    order = await request_licences(api, tenant, 4)
    ended = await _terminated(dev_server, order)

    assigned = await api.post(f"/licence-orders/{order['id']}/assign", headers=tenant.partner_manager.headers)

    assert assigned.status_code == 200, assigned.text
    assert (assigned.json()["status"], await stock(api, tenant)) == ("assigned", 96)
    handle = dev_server.client.get_workflow_handle(order_workflow_id(uuid.UUID(order["id"])), result_type=OrderOutcome)
    outcome = await asyncio.wait_for(handle.result(), 60)
    assert (outcome.status, (await handle.describe()).run_id != ended) == (OrderStatus.ASSIGNED, True)
    await eventually(lambda: smtp.inbox.to(tenant.customer_manager.email, about=" assigned "))
    assert len(smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")) == 1


async def test_reconcile_starts_a_waiting_orders_workflow_again_once(
    api: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    order = await request_licences(api, tenant, 2)
    ended = await _terminated(dev_server, order)
    handle = dev_server.client.get_workflow_handle(order_workflow_id(uuid.UUID(order["id"])), result_type=OrderOutcome)

    first = await reconcile(dev_server.client, settings, sessions, blocks_since=datetime.now(UTC))
    resumed = await handle.describe()
    again = await reconcile(dev_server.client, settings, sessions, blocks_since=datetime.now(UTC))

    assert first.orders_resumed >= 1  # other tests' waiting orders may be among them
    assert (resumed.status, resumed.run_id != ended) == (WorkflowExecutionStatus.RUNNING, True)
    assert (await handle.describe()).run_id == resumed.run_id  # running: not started a second time
    assert again.orders >= 1
    cancelled = await api.post(f"/licence-orders/{order['id']}/cancel", headers=tenant.customer_manager.headers)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert (await asyncio.wait_for(handle.result(), 60)).status is OrderStatus.CANCELLED


async def test_a_run_started_again_takes_on_a_decision_made_meanwhile(
    api: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    smtp: SmtpServer,
) -> None:
    """A decision committed after the order was last read as waiting, before the run started for it began (its
    own workflow's update lost with it): the new run finds the decision first, sends its emails and ends with it.
    (Reconcile reads the order after finding its workflow ended, and then starts none; the API's run may meet it.)"""
    order = await request_licences(api, tenant, 3)
    await _terminated(dev_server, order)
    waiting = await _order(sessions, order)
    await reject_unseen(sessions, settings, tenant, waiting.id, reason="No budget left", at=datetime.now(UTC))

    assert not await resume_order(dev_server.client, settings, sessions, waiting.id, datetime.now(UTC))  # decided
    await start_again(dev_server.client, settings, waiting, datetime.now(UTC))  # from what it read before

    handle = dev_server.client.get_workflow_handle(order_workflow_id(waiting.id), result_type=OrderOutcome)
    outcome = await asyncio.wait_for(handle.result(), 60)
    assert outcome.status is OrderStatus.REJECTED
    [email] = smtp.inbox.to(tenant.customer_manager.email, about="not approved")
    assert "No budget left" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert (await _order(sessions, order)).status == "rejected"
