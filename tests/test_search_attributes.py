"""Setting up Temporal for the worker: a namespace without our search attributes (a dev server started without
them, a new namespace) has the API say what is missing and who fixes it, and the worker register them when it
starts; a worker whose metrics address is taken says what to set."""

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from licensing.config import Settings
from licensing.temporal import metrics_runtime, missing_search_attributes, search_attributes_command
from tests import factories
from tests.processes import local_temporal, start_worker, start_worker_at, until
from tests.smtp_server import free_port


@pytest.fixture
async def bare_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of its own, started without any search attribute."""
    env = await local_temporal()
    yield env
    await env.shutdown()


async def test_the_api_names_the_missing_setup_and_the_worker_registers_it(
    bare_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    client = bare_server.client
    assert await missing_search_attributes(client, "default") == ["PartnerId", "CustomerId", "OrderStatus"]
    app = create_app(settings, sessions=sessions, temporal=client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/api/v1") as api:
        refused = await api.post(
            f"/customers/{tenant.customer_id}/licence-orders",
            json={"quantity": 1},
            headers=tenant.customer_manager.headers,
        )
        orders = await api.get(
            f"/customers/{tenant.customer_id}/licence-orders", headers=tenant.customer_manager.headers
        )
        not_ready = await api.get("http://testserver/readyz")
    assert refused.status_code == 503, refused.text
    assert "namespace lacks a search attribute" in refused.json()["detail"]
    assert "starts the worker, which registers PartnerId, CustomerId and OrderStatus" in refused.json()["detail"]
    assert orders.json()["items"] == []  # nothing half-written
    assert not_ready.status_code == 503
    assert "lacks the search attributes PartnerId, CustomerId, OrderStatus; start the worker" in not_ready.text

    worker = start_worker(bare_server, settings)
    try:

        async def registered() -> bool:
            assert worker.poll() is None, "the worker exited"
            return await missing_search_attributes(client, "default") == []

        await until(registered, 60)
    finally:
        worker.kill()
        worker.wait()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as ops:
        ready = await ops.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_the_command_to_register_them_by_hand_names_each() -> None:
    command = search_attributes_command("licensing")
    assert command.count("temporal operator search-attribute create --namespace licensing --name ") == 3
    assert all(f"--name {name} --type Keyword" in command for name in ("PartnerId", "CustomerId", "OrderStatus"))


def test_a_second_worker_on_a_taken_metrics_address_says_what_to_set() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(SystemExit) as stopped:
            metrics_runtime(address)
    assert f"cannot listen on {address}" in str(stopped.value)
    assert "LICENSING_WORKER_METRICS_ADDRESS" in str(stopped.value)


async def test_a_worker_started_before_its_temporal_server_waits_for_it(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Started beside its server (or before it), the worker waits for Temporal instead of stopping; once the server
    answers, it sets the namespace up (registers the search attributes) and runs."""
    port = free_port()
    worker = start_worker_at(f"127.0.0.1:{port}", settings)
    try:
        await asyncio.sleep(3)
        assert worker.poll() is None, "the worker stopped instead of waiting for Temporal"
        server = await local_temporal(port)
        try:

            async def set_up() -> bool:
                return not await missing_search_attributes(server.client, "default")

            await until(set_up, within_seconds=60)
        finally:
            await server.shutdown()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
