"""A LICENSING_TEMPORAL_NAMESPACE that the Temporal server does not have (misspelt, or not created yet on a new
cluster) is named as such, with the command that creates it: by the worker, which stops at once with one line
instead of claiming to poll and then dying with a traceback; by /readyz, instead of "temporal: not answering"; and
by a request that needs a workflow, which writes nothing."""

import os
import subprocess
import sys
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db.migrate import ROOT
from licensing.config import Settings
from licensing.temporal import connect
from tests import factories
from tests.smtp_server import free_port


def _nowhere(settings: Settings, dev_server: WorkflowEnvironment) -> Settings:
    return settings.model_copy(
        update={
            "temporal_address": dev_server.client.service_client.config.target_host,
            "temporal_namespace": f"nowhere-{uuid.uuid4().hex[:8]}",
        }
    )


async def test_the_api_names_a_namespace_that_does_not_exist(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    dev_server: WorkflowEnvironment,
    tenant: factories.Tenant,
) -> None:
    settings = _nowhere(settings, dev_server)
    namespace = settings.temporal_namespace
    app = create_app(settings, sessions=sessions, temporal=await connect(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        not_ready = await http.get("/readyz")
        refused = await http.post(
            f"/api/v1/customers/{tenant.customer_id}/licence-orders",
            json={"quantity": 1},
            headers=tenant.customer_manager.headers,
        )
        orders = await http.get(
            f"/api/v1/customers/{tenant.customer_id}/licence-orders", headers=tenant.customer_manager.headers
        )
    assert not_ready.status_code == 503
    assert f"the namespace {namespace} does not exist" in not_ready.json()["detail"]
    assert f"temporal operator namespace create --namespace {namespace}" in not_ready.json()["detail"]
    assert "not answering" not in not_ready.json()["detail"]
    assert refused.status_code == 503, refused.text
    assert f"its namespace {namespace} does not exist" in refused.json()["detail"]
    assert "LICENSING_TEMPORAL_NAMESPACE" in refused.json()["detail"]
    assert orders.json()["items"] == []  # nothing half-written


def test_the_worker_stops_with_one_line_naming_a_namespace_that_does_not_exist(
    settings: Settings, dev_server: WorkflowEnvironment
) -> None:
    settings = _nowhere(settings, dev_server)
    env = {
        **os.environ,
        "LICENSING_DATABASE_URL": settings.database_url,
        "LICENSING_TEMPORAL_ADDRESS": settings.temporal_address,
        "LICENSING_TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "LICENSING_TASK_QUEUE": settings.task_queue,
        "LICENSING_SMTP_PORT": str(settings.smtp_port),
        "LICENSING_WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    stopped = subprocess.run(
        [sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert stopped.returncode != 0
    assert f"the Temporal namespace {settings.temporal_namespace} does not exist" in stopped.stderr
    assert f"temporal operator namespace create --namespace {settings.temporal_namespace}" in stopped.stderr
    assert "worker polling" not in stopped.stderr + stopped.stdout
    assert "Traceback" not in stopped.stderr
