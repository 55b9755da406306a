"""The API started while Temporal is away (as uvicorn runs it): it serves reads from the database, answers 503 for
what needs a workflow, and connects once Temporal is there, with no restart."""

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db.models import LicenceBlock
from licensing.config import Settings
from licensing.reconcile import reconcile
from licensing.temporal import register_search_attributes
from tests import factories
from tests.processes import local_temporal, served_api, until
from tests.smtp_server import free_port
from workflows.block import block_workflow_id

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def temporal_port() -> int:
    return free_port()


@pytest.fixture
def api_url(settings: Settings, temporal_port: int) -> Iterator[str]:
    """The API under uvicorn, pointed at a Temporal address where nothing answers yet."""
    with served_api(f"127.0.0.1:{temporal_port}", settings) as url:
        yield url


async def test_the_api_serves_reads_while_temporal_is_away_and_connects_when_it_comes(
    api_url: str, temporal_port: int, tenant: factories.Tenant
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:

        async def answering() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await until(answering, within_seconds=60)
        me = await http.get("/api/v1/users/me", headers=tenant.customer_manager.headers)
        waiting = await http.get("/readyz")
        order = await http.post(
            f"/api/v1/customers/{tenant.customer_id}/licence-orders",
            json={"quantity": 1},
            headers=tenant.customer_manager.headers,
        )
        assert (me.status_code, waiting.status_code, order.status_code) == (200, 503, 503)
        assert "temporal: not connected" in waiting.json()["detail"]
        assert "not connected yet" in order.json()["detail"]
        server = await local_temporal(temporal_port)
        try:

            async def connected() -> bool:
                await asyncio.sleep(0.3)
                return "lacks the search attributes" in (await http.get("/readyz")).text

            await until(connected, within_seconds=30)  # a new server: what the worker registers is still missing
            await register_search_attributes(server.client, "default")
            assert (await http.get("/readyz")).status_code == 200
        finally:
            await server.shutdown()


async def test_a_trial_customer_saved_while_temporal_went_away_is_created_and_its_term_repaired(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    """Temporal goes away between the API's connection and the request: the customer and its trial are saved and
    answered 201 (a retry would be refused as a customer that exists); the worker's repair starts the term."""
    gone = await local_temporal()
    app = create_app(settings, sessions=sessions, temporal=gone.client)
    await gone.shutdown()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api/api/v1") as api:
        made = await api.post(
            f"/partners/{tenant.partner_id}/customers",
            json={"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial"},
            headers=tenant.partner_manager.headers,
        )
    assert made.status_code == 201, made.text
    customer_id = uuid.UUID(made.json()["id"])
    async with sessions() as session:
        block_id = (
            await session.execute(select(LicenceBlock.id).where(LicenceBlock.customer_id == customer_id))
        ).scalar_one()
    since = datetime.now(UTC) - timedelta(minutes=5)
    repaired = await reconcile(dev_server.client, settings, sessions, blocks_since=since)
    term = await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).describe()
    assert (repaired.terms_started >= 1, term.status) == (True, WorkflowExecutionStatus.RUNNING)
    async with sessions.begin() as session:
        await session.execute(update(LicenceBlock).where(LicenceBlock.id == block_id).values(status="expired"))
    await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).terminate(reason="test over")
