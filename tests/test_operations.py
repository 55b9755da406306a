"""What operators watch: health, readiness, metrics, request ids and structured logs."""

import json
import logging

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from licensing.config import Settings
from licensing.logs import JsonFormatter, request_id
from licensing.temporal import build_worker, metrics_runtime
from tests.factories import Tenant
from tests.smtp_server import free_port
from tests.test_api_orders import request_licences


@pytest.fixture
async def ops(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_healthz_answers_while_the_process_is_up(ops: httpx.AsyncClient) -> None:
    response = await ops.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ready_when_database_and_temporal_answer(ops: httpx.AsyncClient) -> None:
    response = await ops.get("/readyz")
    assert (response.status_code, response.json()["status"]) == (200, "ready")


async def test_readyz_is_503_naming_what_is_down(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    unreachable = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
    app = create_app(settings, sessions=sessions, temporal=unreachable)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get("/readyz")
    detail = response.json()["detail"]
    assert (response.status_code, detail.split(":")[0], "127.0.0.1" in detail) == (503, "temporal", False)
    assert detail.endswith("; the API's log has the details)")


async def test_metrics_count_requests_by_route_and_status(
    ops: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    await request_licences(api, tenant, 1)
    text = (await ops.get("/metrics")).text
    assert (
        'licensing_http_requests_total{method="POST",route="/customers/{customer_id}/licence-orders",status="201"}'
        in text
    )


async def test_every_answer_carries_a_request_id(ops: httpx.AsyncClient) -> None:
    given = await ops.get("/healthz", headers={"X-Request-ID": "trace-42"})
    made = await ops.get("/healthz")
    assert (given.headers["x-request-id"], len(made.headers["x-request-id"])) == ("trace-42", 32)


def test_log_lines_are_json_with_the_request_and_workflow_ids() -> None:
    token = request_id.set("req-1")
    record = logging.LogRecord("licensing", logging.INFO, __file__, 1, "assigned %s", ("order",), None)
    record.temporal_activity = {"workflow_id": "licence-order-1", "activity_type": "assign_order", "attempt": 1}
    line = json.loads(JsonFormatter().format(record))
    request_id.reset(token)
    assert {k: line[k] for k in ("message", "request_id", "workflow_id", "activity_type")} == {
        "message": "assigned order",
        "request_id": "req-1",
        "workflow_id": "licence-order-1",
        "activity_type": "assign_order",
    }


async def test_the_worker_exposes_the_sdk_metrics(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        dev_server.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=metrics_runtime(address),
    )
    app = create_app(settings, sessions=sessions, temporal=client)
    async with (
        build_worker(client, settings, sessions),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/api/v1") as api,
    ):
        await request_licences(api, tenant, 1)
        async with httpx.AsyncClient() as scraper:
            text = (await scraper.get(f"http://{address}/metrics")).text
    assert "temporal_workflow_task_execution_latency" in text or "temporal_request" in text
