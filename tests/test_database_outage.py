"""PostgreSQL stopped (`pg_ctlcluster ... stop`) while a real worker process is assigning orders and importing
learners: meanwhile the API answers 503 with a message a person can act on and writes nothing; once the database is
back, every workflow finishes, each thing done once.

Runs on PostgreSQL only, against a local cluster this machine may stop and start (as root or postgres)."""

import asyncio
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowUpdateStage
from temporalio.testing import WorkflowEnvironment

from db.models import AuditEvent, Learner, Licence, LicenceBlock, LicenceOrder, OutboxEmail
from licensing.config import Settings
from payloads.common import Actor, Role
from payloads.orders import AssignRequest
from tests import factories
from tests.databases import backend
from tests.processes import start_worker, until
from tests.smtp_server import SmtpServer
from tests.test_learner_import import csv_of
from workflows import options
from workflows.order import LicenceOrderWorkflow

ORDERS = 6
ROWS = 20_000
DATABASE_DOWN = "the database is unavailable right now; try again shortly"
# How long an order's transaction is retried in the worker before it goes on as an activity (workflows/options.py).
_LOCAL = options.LOCAL_DATABASE["retry_policy"]
LOCAL_ATTEMPTS_SECONDS = sum(
    _LOCAL.initial_interval.total_seconds() * _LOCAL.backoff_coefficient**n for n in range(_LOCAL.maximum_attempts - 1)
)


@dataclass(frozen=True)
class Cluster:
    version: str
    name: str

    def _ctl(self, action: str, *options: str) -> int:
        command = ["pg_ctlcluster", *options, self.version, self.name, action]
        return subprocess.run(command, capture_output=True, timeout=60).returncode

    def stop(self) -> None:
        assert self._ctl("stop", "--mode", "fast") == 0, "pg_ctlcluster could not stop the cluster"

    def start(self) -> None:
        """Start it unless it is running (`status` answers 0 when it is)."""
        if self._ctl("status") != 0:
            assert self._ctl("start") == 0, "pg_ctlcluster could not start the cluster"


def _local_cluster() -> Cluster | None:
    """The Debian cluster serving the test database's port, if this user may stop and start it."""
    if backend() != "postgresql" or shutil.which("pg_lsclusters") is None:
        return None
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        return None
    url = make_url(os.environ["LICENSING_TEST_DATABASE_URL"])
    if url.host not in (None, "", "localhost", "127.0.0.1"):
        return None
    listed = subprocess.run(["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True).stdout
    for line in listed.splitlines():
        version, name, port, status, *_ = line.split()
        if int(port) == (url.port or 5432) and status == "online":
            return Cluster(version, name)
    return None


async def _activities_scheduled(dev_server: WorkflowEnvironment, order_id: str) -> tuple[list[str], int]:
    """The activities an order's workflow scheduled, and the length of its history."""
    handle = dev_server.client.get_workflow_handle(f"licence-order-{order_id}")
    events = [event async for event in handle.fetch_history_events()]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    return scheduled, len(events)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    found = _local_cluster()
    if found is None:
        pytest.skip("needs LICENSING_TEST_DATABASE=postgresql on a local cluster this user may stop (root/postgres)")
    try:
        yield found
    finally:
        found.start()  # whatever happened, the database is running again for the tests after this one


async def test_the_database_stopped_mid_work_answers_503_then_everything_finishes_once(
    api_alone: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    workers: list[subprocess.Popen[bytes]],
    cluster: Cluster,
) -> None:
    tenant = await factories.tenant(sessions, stock=100)
    await factories.block(sessions, tenant, quantity=50, days=365)
    customer = tenant.customer_manager.headers
    keyed = {**customer, "Idempotency-Key": "sent-during-the-outage"}
    workers.append(start_worker(dev_server, settings))
    orders = [
        (
            await api_alone.post(
                f"/customers/{tenant.customer_id}/licence-orders", json={"quantity": 2}, headers=customer
            )
        ).json()["id"]
        for _ in range(ORDERS)
    ]
    content = csv_of("email,name", *(f"staff{n}@example.com,Staff {n}" for n in range(ROWS)))
    upload = await api_alone.post(
        f"/customers/{tenant.customer_id}/learner-imports",
        files={"file": ("staff.csv", content, "text/csv")},
        headers=customer,
    )
    import_url = f"/customers/{tenant.customer_id}/learner-imports/{upload.json()['id']}"

    async def import_under_way() -> bool:
        return int((await api_alone.get(import_url, headers=customer)).json()["processed_rows"]) > 0

    await until(import_under_way, 120)
    partner = Actor(user_id=tenant.partner_manager.id, role=Role.PARTNER_MANAGER)

    async def assign(order_id: str) -> None:
        handle = dev_server.client.get_workflow_handle(f"licence-order-{order_id}")
        await handle.start_update(
            LicenceOrderWorkflow.assign, AssignRequest(actor=partner), wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )

    # Half the assignments are under way when the database stops; the other half are accepted while it is down.
    await asyncio.gather(*(assign(o) for o in orders[: ORDERS // 2]))
    cluster.stop()
    try:
        await asyncio.gather(*(assign(o) for o in orders[ORDERS // 2 :]))
        answers = [
            await api_alone.get(f"/licence-orders/{orders[0]}", headers=tenant.partner_manager.headers),
            await api_alone.post(
                f"/customers/{tenant.customer_id}/licence-orders", json={"quantity": 3}, headers=customer
            ),
            await api_alone.post(
                f"/customers/{tenant.customer_id}/licence-orders", json={"quantity": 3}, headers=keyed
            ),
            await api_alone.get(import_url, headers=customer),
        ]
        ready = await api_alone.get("http://testserver/readyz")
        # The worker's activities fail and are retried meanwhile; the assignments accepted during the outage
        # use up their attempts in the worker and go on as activities.
        await asyncio.sleep(LOCAL_ATTEMPTS_SECONDS + 5)
    finally:
        cluster.start()
    assert [(a.status_code, a.json()["detail"]) for a in answers] == [(503, DATABASE_DOWN)] * 4
    assert ready.status_code == 503 and "database" in ready.json()["detail"]

    async def finished() -> bool:
        statuses = [
            (await api_alone.get(f"/licence-orders/{o}", headers=tenant.partner_manager.headers)).json()["status"]
            for o in orders
        ]
        progress = (await api_alone.get(import_url, headers=customer)).json()
        emailed = len(smtp.inbox.to(tenant.customer_manager.email)) >= ORDERS  # one "assigned" email each
        return statuses == ["assigned"] * ORDERS and progress["status"] == "finished" and emailed

    await until(finished, 240)
    for order_id in orders[ORDERS // 2 :]:
        scheduled, length = await _activities_scheduled(dev_server, order_id)
        # A local activity retried for the whole outage would add a marker and workflow tasks instead.
        assert scheduled.count("assign_order") == 1 and length < 60, (order_id, scheduled, length)
    assert (await api_alone.get("http://testserver/readyz")).status_code == 200
    # The keyed request refused during the outage is not held against its key: the retry makes the order.
    retried = await api_alone.post(
        f"/customers/{tenant.customer_id}/licence-orders", json={"quantity": 3}, headers=keyed
    )
    assert retried.status_code == 201, retried.text
    mine = tenant.customer_id
    stock = (await api_alone.get(f"/partners/{tenant.partner_id}", headers=tenant.partner_manager.headers)).json()
    progress = (await api_alone.get(import_url, headers=customer)).json()
    held = progress["licensed"]
    assert held >= 50
    assert {
        "stock": stock["licence_stock"],
        "orders": await factories.scalar(sessions, select(func.count()).where(LicenceOrder.customer_id == mine)),
        "order blocks": await factories.scalar(sessions, select(func.count()).where(LicenceBlock.customer_id == mine)),
        "licences": await factories.scalar(sessions, select(func.count()).where(Licence.customer_id == mine)),
        "assigned events": await factories.scalar(
            sessions,
            select(func.count()).where(AuditEvent.action == "licence_order.assigned", AuditEvent.customer_id == mine),
        ),
        "learners": await factories.scalar(sessions, select(func.count()).where(Learner.customer_id == mine)),
        "distinct learner emails": await factories.scalar(
            sessions, select(func.count(func.distinct(Learner.email))).where(Learner.customer_id == mine)
        ),
        "learners holding a licence": await factories.scalar(
            sessions, select(func.count()).where(Learner.customer_id == mine, Learner.licence_status == "active")
        ),
        "licences held": await factories.scalar(
            sessions, select(func.count()).where(Licence.customer_id == mine, Licence.learner_id.is_not(None))
        ),
        "outbox to the customer": await factories.scalar(
            sessions,
            select(func.count()).where(OutboxEmail.recipient == tenant.customer_manager.email),
        ),
        "delivered to the customer": len(smtp.inbox.to(tenant.customer_manager.email)),
        "import": (progress["created"], progress["failed"]),
    } == {
        "stock": 100 - 2 * ORDERS,
        "orders": ORDERS + 1,  # and the keyed request retried after the outage, waiting
        "order blocks": ORDERS + 1,  # and the block the tenant started with
        "licences": 50 + 2 * ORDERS,
        "assigned events": ORDERS,
        "learners": ROWS,
        "distinct learner emails": ROWS,
        "learners holding a licence": held,  # one licence each, whichever of them came first
        "licences held": held,
        "outbox to the customer": ORDERS,
        "delivered to the customer": ORDERS,
        "import": (ROWS, 0),
    }
