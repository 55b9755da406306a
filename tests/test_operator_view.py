"""What an operator has: the CLI's way in, and orders they can find in the Temporal Web UI, without personal data."""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from licensing.config import Settings
from licensing.temporal import build_worker
from tests.factories import Tenant
from tests.ordering import Orders
from tests.smtp_server import SmtpServer
from tests.test_api_orders import eventually, request_licences
from workflows.search import CUSTOMER_ID, ORDER_STATUS, PARTNER_ID


def create_operator(database_url: str, email: str) -> subprocess.CompletedProcess[str]:
    licensing = Path(sys.executable).parent / "licensing"
    env = {**os.environ, "LICENSING_DATABASE_URL": database_url}
    return subprocess.run(
        [str(licensing), "create-operator", "--email", email], env=env, capture_output=True, text=True
    )


@pytest.fixture
def cli_token(database_url: str) -> str:
    return create_operator(database_url, f"ops-{uuid.uuid4().hex[:6]}@example.com").stdout.strip()


def test_create_operator_refuses_a_second_operator_with_the_same_email(database_url: str) -> None:
    first, again = (create_operator(database_url, "ops@example.com") for _ in range(2))
    assert (first.returncode, again.returncode, again.stderr.strip()) == (
        0,
        1,
        "error: a user with email ops@example.com already exists",
    )


def test_create_operator_refuses_a_bad_email(database_url: str) -> None:
    assert create_operator(database_url, "not-an-email").returncode == 2


async def test_the_token_create_operator_prints_opens_the_api(api: httpx.AsyncClient, cli_token: str) -> None:
    response = await api.post(
        "/partners", json={"name": "First Partner"}, headers={"Authorization": f"Bearer {cli_token}"}
    )
    assert response.status_code == 201


async def test_an_order_is_found_by_customer_and_status_without_personal_data(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant
) -> None:
    order = await request_licences(api, tenant, 3)
    await api.post(f"/licence-orders/{order['id']}/assign", headers=tenant.partner_manager.headers)
    found = await _find(dev_server, f"CustomerId = '{tenant.customer_id}' AND OrderStatus = 'assigned'")
    described = await dev_server.client.get_workflow_handle(f"licence-order-{order['id']}").describe()
    attributes = described.typed_search_attributes
    shown = f"{await described.static_summary()} {await described.static_details()}"
    assert found == [f"licence-order-{order['id']}"]
    assert (attributes.get(PARTNER_ID), attributes.get(CUSTOMER_ID), attributes.get(ORDER_STATUS)) == (
        str(tenant.partner_id),
        str(tenant.customer_id),
        "assigned",
    )
    assert "@" not in shown and "Customer-" not in shown


async def _find(env: WorkflowEnvironment, query: str) -> list[str]:
    """Visibility is eventually consistent: ask again for a few seconds."""
    for _ in range(100):
        found = [w.id async for w in env.client.list_workflows(query)]
        if found:
            return found
        await asyncio.sleep(0.1)
    return []


async def test_licence_terms_and_imports_carry_the_tenant_and_a_summary_without_personal_data(
    api: httpx.AsyncClient, dev_server: WorkflowEnvironment, tenant: Tenant
) -> None:
    order = await request_licences(api, tenant, 2)
    block_id = (await api.post(f"/licence-orders/{order['id']}/assign", headers=tenant.partner_manager.headers)).json()[
        "block"
    ]["id"]
    started = await api.post(
        f"/customers/{tenant.customer_id}/learner-imports",
        files={"file": ("staff.csv", b"email,name\r\nann@example.com,Ann Example\r\n", "text/csv")},
        headers=tenant.customer_manager.headers,
    )
    shown = []
    for workflow_id in (f"licence-block-{block_id}", f"learner-import-{started.json()['id']}"):
        for _ in range(100):  # the term starts just after the assignment answers
            try:
                described = await dev_server.client.get_workflow_handle(workflow_id).describe()
                break
            except RPCError:
                await asyncio.sleep(0.1)
        attributes = described.typed_search_attributes
        shown.append(
            (
                attributes.get(PARTNER_ID),
                attributes.get(CUSTOMER_ID),
                await described.static_summary(),
                await described.static_details(),
            )
        )
    assert [s[:2] for s in shown] == [(str(tenant.partner_id), str(tenant.customer_id))] * 2
    assert [s[2] for s in shown] == ["Licence term: 2 premium licences", "Learner import: 1 row"]
    assert not any("@" in str(s) or "Ann" in str(s) for s in shown)


async def test_a_relay_reply_quoting_the_recipient_stays_out_of_the_orders_history(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    # The partner's "requested" email is greylisted at once and at its first delivery attempt, then taken.
    smtp.inbox.recipient_refusals.extend(["450 4.2.0 <{address}>: Recipient address rejected: Greylisted"] * 2)
    orders = Orders(dev_server, settings)
    async with build_worker(dev_server.client, settings, sessions):
        handle = await orders.request(tenant, 2)
        await eventually(lambda: smtp.inbox.to(tenant.partner_manager.email), within_seconds=30)
        await orders.cancel(handle, tenant)
        await handle.result()
    history = (await handle.fetch_history()).to_json()
    assert "Greylisted" not in history and tenant.partner_manager.email not in history
