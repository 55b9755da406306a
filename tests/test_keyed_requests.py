"""Keyed licence requests and CSV imports: the Idempotency-Key also names the order or import a request makes,
so a retry after a 503 reaches the one its first attempt made, and the same key used after it was forgotten makes
a new one."""

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api import order_workflows
from api.main import create_app
from db.models import AuditEvent, IdempotentRequest, LearnerImport, LicenceOrder
from licensing.config import Settings
from licensing.temporal import activities, build_worker
from payloads.orders import LicenceOrderInput, OrderOutcome
from tests.factories import Tenant
from tests.test_idempotency import _learners, keyed
from workflows.block import LicenceBlockWorkflow
from workflows.learner_import import LearnerImportWorkflow
from workflows.order import LicenceOrderWorkflow
from workflows.order_patches import NOTICES_WITH_DECISIONS


async def test_a_keyed_upload_sent_again_is_the_same_request_whatever_its_multipart_boundary(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Clients choose a new multipart boundary for every request: the same file again is a repeat, not a 422."""
    staff = ("staff.csv", b"email,name\r\ndee@example.com,Dee\r\n", "text/csv")
    headers = keyed(tenant.customer_manager.headers, "upload-twice")
    url = f"/customers/{tenant.customer_id}/learner-imports"
    first = await api.post(url, files={"file": staff}, headers=headers)
    again = await api.post(url, files={"file": staff}, headers=headers)
    other = await api.post(url, files={"file": ("staff.csv", b"email,name\r\n", "text/csv")}, headers=headers)
    assert (first.status_code, again.status_code, again.headers.get("idempotent-replayed"), other.status_code) == (
        202,
        202,
        "true",
        422,
    )
    assert again.json()["id"] == first.json()["id"]


async def _forget_after_a_day(sessions: async_sessionmaker[AsyncSession], key: str) -> None:
    """As if the key had been used more than a day ago."""
    async with sessions.begin() as session:
        await session.execute(
            update(IdempotentRequest)
            .where(IdempotentRequest.key == key)
            .values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )


async def test_a_key_used_again_after_it_was_forgotten_makes_a_new_order_and_a_new_import(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Keys are kept for a day: the same request with the same key a day later (a monthly job reusing its key)
    is a new request, not the first one's retry."""
    orders, imports = (
        f"/customers/{tenant.customer_id}/licence-orders",
        f"/customers/{tenant.customer_id}/learner-imports",
    )
    staff = ("staff.csv", b"email,name\r\neve@example.com,Eve\r\n", "text/csv")
    made = []
    for _ in range(2):
        order = await api.post(orders, json={"quantity": 1}, headers=keyed(tenant.customer_manager.headers, "monthly"))
        upload = await api.post(imports, files={"file": staff}, headers=keyed(tenant.customer_manager.headers, "file"))
        made.append((order.status_code, order.json()["id"], upload.status_code, upload.json()["id"]))
        await _forget_after_a_day(sessions, "monthly")
        await _forget_after_a_day(sessions, "file")
    (first_order, first_import), (second_order, second_import) = ((m[1], m[3]) for m in made)
    assert [(m[0], m[2]) for m in made] == [(201, 202)] * 2
    assert (second_order != first_order, second_import != first_import) == (True, True)


@dataclass
class KeyedRequests:
    """A customer's manager sending keyed licence requests to the API, with no worker until `worker()`."""

    api: httpx.AsyncClient
    env: WorkflowEnvironment
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    tenant: Tenant
    monkeypatch: pytest.MonkeyPatch

    async def request(self, key: str) -> httpx.Response:
        return await self.api.post(
            f"/customers/{self.tenant.customer_id}/licence-orders",
            json={"quantity": 3},
            headers=keyed(self.tenant.customer_manager.headers, key),
        )

    async def unanswered(self, key: str) -> str:
        """The first attempt, with no worker running: a 503 naming the order it may still save."""
        with self.monkeypatch.context() as patched:
            patched.setattr(order_workflows, "ANSWER_WITHIN_SECONDS", 1.0)
            first = await self.request(key)
        assert first.status_code == 503, first.text
        found = re.search(r"order ([0-9a-f-]{36}) was received", first.json()["detail"])
        assert found is not None, first.text
        return found.group(1)

    def worker(self) -> Worker:
        return build_worker(self.env.client, self.settings, self.sessions)

    def workflow(self, order_id: str) -> WorkflowHandle[Any, Any]:
        return self.env.client.get_workflow_handle(f"licence-order-{order_id}")

    async def cancel(self, order_id: str) -> None:
        cancelled = await self.api.post(
            f"/licence-orders/{order_id}/cancel", headers=self.tenant.customer_manager.headers
        )
        assert cancelled.status_code == 200, cancelled.text

    async def orders(self) -> list[tuple[str, str]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(LicenceOrder.id, LicenceOrder.status).where(LicenceOrder.customer_id == self.tenant.customer_id)
            )
            return [(str(order_id), status) for order_id, status in rows]


@pytest.fixture
def manager(
    api_alone: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> KeyedRequests:
    """The requests of the tenant's managers (with the settings of the class that asks, where it has its own)."""
    return KeyedRequests(api_alone, dev_server, settings, sessions, tenant, monkeypatch)


class TestKeyedOrderRequests:
    """An order request that got a 503 (no worker answered in time) may still be saved later: its keyed retry
    must reach the same order, not make a second one."""

    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"max_open_orders_per_customer": 1})

    async def test_a_retry_before_the_order_is_saved_joins_the_first_attempts_workflow(
        self, manager: KeyedRequests
    ) -> None:
        first_id = await manager.unanswered("order-503-retry")
        # Still no worker: the retry waits on the first attempt's workflow.
        retry = asyncio.create_task(manager.request("order-503-retry"))
        await asyncio.sleep(0.5)
        async with manager.worker():
            again = await retry
            assert (again.status_code, again.json()["id"], again.json()["status"]) == (201, first_id, "requested")
            other = await manager.request("another-order")
            assert other.status_code == 409  # one waiting request allowed, and it is the first one
            assert await manager.orders() == [(first_id, "requested")]
            await manager.cancel(first_id)

    async def test_a_retry_after_the_order_was_saved_gets_it_even_at_the_limit(self, manager: KeyedRequests) -> None:
        """The saved order is the customer's one waiting request: the retry is answered that order, not a 409."""
        first_id = await manager.unanswered("order-saved-retry")
        async with manager.worker():
            await manager.workflow(first_id).execute_update(LicenceOrderWorkflow.registered)
            again = await manager.request("order-saved-retry")
            assert (again.status_code, again.json()["id"], again.json()["status"]) == (201, first_id, "requested")
            assert await manager.orders() == [(first_id, "requested")]
            await manager.cancel(first_id)

    async def test_an_order_saved_late_is_dated_when_it_was_asked(self, manager: KeyedRequests) -> None:
        """The customer asked while no worker ran: the order is dated (and reminded) from the request, not from
        the moment a worker came back and saved it."""
        asked = datetime.now(UTC)
        order_id = await manager.unanswered("order-dated")
        await asyncio.sleep(2)
        worker_back = datetime.now(UTC)
        async with manager.worker():
            await manager.workflow(order_id).execute_update(LicenceOrderWorkflow.registered)
            async with manager.sessions() as session:
                requested_at = await session.scalar(
                    select(LicenceOrder.requested_at).where(LicenceOrder.id == uuid.UUID(order_id))
                )
            await manager.cancel(order_id)
        assert requested_at is not None
        assert asked - timedelta(seconds=1) <= requested_at < worker_back, (asked, requested_at, worker_back)

    async def test_a_retry_after_the_order_was_decided_answers_the_order_as_it_is(self, manager: KeyedRequests) -> None:
        first_id = await manager.unanswered("order-decided")
        async with manager.worker():
            await manager.workflow(first_id).execute_update(LicenceOrderWorkflow.registered)
            await manager.cancel(first_id)
            await manager.workflow(first_id).result()
            again = await manager.request("order-decided")
        assert (again.status_code, again.json()["id"], again.json()["status"]) == (201, first_id, "cancelled")
        assert await manager.orders() == [(first_id, "cancelled")]

    async def test_a_retry_of_a_request_refused_when_saved_is_refused_again(self, manager: KeyedRequests) -> None:
        first_id = await manager.unanswered("order-refused")
        # Before any worker saves it, another request takes the customer's one waiting place.
        other_id = await manager.unanswered("order-in-front")
        async with manager.worker():
            saved: list[str] = []
            for order_id in (first_id, other_id):
                try:
                    await manager.workflow(order_id).execute_update(LicenceOrderWorkflow.registered)
                    saved.append(order_id)
                except (WorkflowUpdateFailedError, RPCError):  # refused, and perhaps already ended
                    assert await manager.workflow(order_id).result() is None  # ended without an order
            assert await manager.orders() == [(saved_id, "requested") for saved_id in saved]
            [saved_id] = saved
            # With the place free again the retry passes the API's early check, and finds its workflow ended.
            await manager.cancel(saved_id)
            again = await manager.request("order-refused" if saved_id == other_id else "order-in-front")
        refusal = again.json()["detail"]
        assert (again.status_code, "did not become an order when it was first made" in refusal) == (409, True)
        assert await manager.orders() == [(saved_id, "cancelled")]


async def test_a_keyed_import_retried_after_a_503_imports_the_file_once(
    api: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    """The upload is saved, then starting its workflow fails (Temporal away): 503, and the key is free again for
    the same request (another file with it is 422).
    The retry finds that upload and starts its workflow, instead of saving the file a second time."""
    # A client whose namespace the server does not know: every start fails, as with Temporal away.
    away = await Client.connect(
        dev_server.client.service_client.config.target_host,
        namespace=f"away-{uuid.uuid4()}",
        data_converter=pydantic_data_converter,
    )
    app_without_temporal = create_app(settings, sessions=sessions, temporal=away)
    staff = ("staff.csv", b"email,name\r\nann@example.com,Ann\r\nbob@example.com,Bob\r\n", "text/csv")
    headers = keyed(tenant.customer_manager.headers, "import-503-retry")
    url = f"/customers/{tenant.customer_id}/learner-imports"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app_without_temporal), base_url="http://testserver/api/v1"
    ) as cut_off:
        first = await cut_off.post(url, files={"file": staff}, headers=headers)
    assert first.status_code == 503, first.text
    other = await api.post(
        url, files={"file": ("other.csv", b"email,name\r\ncy@example.com,Cy\r\n", "text/csv")}, headers=headers
    )
    assert other.status_code == 422, other.text  # the key still names the first request
    again = await api.post(url, files={"file": staff}, headers=headers)
    assert again.status_code == 202, again.text
    for _ in range(100):
        progress = await api.get(f"{url}/{again.json()['id']}", headers=tenant.customer_manager.headers)
        if progress.json()["status"] == "finished":
            break
        await asyncio.sleep(0.1)
    async with sessions() as session:
        uploads = await session.scalar(
            select(func.count()).select_from(LearnerImport).where(LearnerImport.customer_id == tenant.customer_id)
        )
    assert (uploads, progress.json()["created"], await _learners(sessions, tenant)) == (1, 2, 2)


class TestKeyedDecisions:
    """A partner manager's assign (or a reject, a cancel) answered 503 because no worker answered in time may
    still be made: its keyed retry gets the decision it made, not a 409 "already assigned", and nothing twice."""

    async def _decide(self, manager: KeyedRequests, order_id: str, decision: str, key: str) -> httpx.Response:
        who = manager.tenant.customer_manager if decision == "cancel" else manager.tenant.partner_manager
        body = {"reason": "budget moved"} if decision == "reject" else None
        return await manager.api.post(
            f"/licence-orders/{order_id}/{decision}", json=body, headers=keyed(who.headers, key)
        )

    async def _stock(self, manager: KeyedRequests) -> int:
        partner = await manager.api.get(
            f"/partners/{manager.tenant.partner_id}", headers=manager.tenant.partner_manager.headers
        )
        return int(partner.json()["licence_stock"])

    @pytest.mark.parametrize(
        ("decision", "status"), [("assign", "assigned"), ("reject", "rejected"), ("cancel", "cancelled")]
    )
    async def test_a_retry_of_a_decision_made_after_its_503_answers_that_decision(
        self, manager: KeyedRequests, decision: str, status: str
    ) -> None:
        async with manager.worker():
            requested = await manager.request(f"order-for-{decision}")
            assert requested.status_code == 201, requested.text
        order_id = requested.json()["id"]
        stock = await self._stock(manager)
        key = f"{decision}-503-retry"
        with manager.monkeypatch.context() as patched:
            patched.setattr(order_workflows, "ANSWER_WITHIN_SECONDS", 1.0)
            first = await self._decide(manager, order_id, decision, key)
            assert first.status_code == 503, first.text
            # Still no worker: the retry is the same update, still waiting.
            assert (await self._decide(manager, order_id, decision, key)).status_code == 503
        async with manager.worker():
            await manager.workflow(order_id).result()
            again = await self._decide(manager, order_id, decision, key)
            other = await self._decide(manager, order_id, decision, f"{key}-another")
        assert (again.status_code, again.json()["id"], again.json()["status"]) == (200, order_id, status), again.text
        assert (again.json()["block"] is not None) == (decision == "assign")
        assert (other.status_code, other.json()["detail"]) == (
            409,
            f"the order is already {status}; only a requested order can be {status}",
        )
        assert await self._stock(manager) == stock - (3 if decision == "assign" else 0)
        async with manager.sessions() as session:
            decided = await session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.subject_id == uuid.UUID(order_id), AuditEvent.action == f"licence_order.{status}")
            )
        assert decided == 1


@workflow.defn(name="LicenceOrderWorkflow", sandboxed=False)
class OrderBeforeLocalSteps(LicenceOrderWorkflow):
    """An order whose workflow began before `order-steps-local` (still waiting for a decision today): its
    transactions run as ordinary activities."""

    @workflow.run
    async def run(self, order: LicenceOrderInput) -> OrderOutcome | None:
        self._together = workflow.patched(NOTICES_WITH_DECISIONS)
        self._begun = True
        return await self._carry_out(order)


async def test_a_keyed_decision_on_an_order_begun_before_local_steps_is_answered_after_its_503(
    api_alone: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def old_worker() -> Worker:
        workflows = [OrderBeforeLocalSteps, LicenceBlockWorkflow, LearnerImportWorkflow]
        return Worker(
            dev_server.client,
            task_queue=settings.task_queue,
            workflows=workflows,
            activities=activities(settings, sessions, dev_server.client),
        )

    manager = KeyedRequests(api_alone, dev_server, settings, sessions, tenant, monkeypatch)
    async with old_worker():
        requested = await manager.request("order-before-local-steps")
        assert requested.status_code == 201, requested.text
    order_id = requested.json()["id"]
    headers = keyed(tenant.partner_manager.headers, "assign-before-local-steps")
    with monkeypatch.context() as patched:
        patched.setattr(order_workflows, "ANSWER_WITHIN_SECONDS", 1.0)
        first = await api_alone.post(f"/licence-orders/{order_id}/assign", headers=headers)
        assert first.status_code == 503, first.text
    async with old_worker():
        await manager.workflow(order_id).result()
        again = await api_alone.post(f"/licence-orders/{order_id}/assign", headers=headers)
    assert (again.status_code, again.json().get("status")) == (200, "assigned"), again.text
