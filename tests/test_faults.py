"""Faults on real processes: a worker SIGKILLed while orders are assigned, and the Temporal dev server SIGKILLed
before a block's expiry and started again after it. Each piece of work happens exactly once."""

import asyncio
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from db.models import Customer, Licence, LicenceBlock, LicenceOrder, OutboxEmail
from licensing.config import Settings
from licensing.temporal import build_worker
from licensing.terms import start_block_term
from payloads.blocks import BlockExpired
from tests import factories
from tests.conftest import installed_binary
from tests.processes import start_worker, until
from tests.smtp_server import SmtpServer, free_port
from workflows.block import block_workflow_id
from workflows.search import ALL_KEYS

ORDERS = 8


async def test_an_assignment_sent_while_a_new_orders_first_task_is_lost_still_starts_its_term_and_emails(
    api_alone: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    workers: list[subprocess.Popen[bytes]],
) -> None:
    """Saving an order (a local activity) commits inside the workflow's first task, then emails the partner. The
    worker dies there: the order is visible, so the partner assigns it, and that update reaches the next worker in
    the same task as the workflow's start, before `run` has begun. The assignment must still be made as a new
    order's is: with its key, its notices and emails, and its licence term."""
    tenant = await factories.tenant(sessions, stock=100)
    smtp.inbox.slow_seconds = 4  # the request's email holds the first task open
    workers.append(start_worker(dev_server, settings))
    request = asyncio.create_task(
        api_alone.post(
            f"/customers/{tenant.customer_id}/licence-orders",
            json={"quantity": 2},
            headers=tenant.customer_manager.headers,
        )
    )

    async def saved() -> bool:
        return bool(
            await factories.scalar(sessions, select(func.count()).where(LicenceOrder.customer_id == tenant.customer_id))
        )

    await until(saved, 60)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    smtp.inbox.slow_seconds = 0
    async with sessions() as session:
        order = (
            await session.execute(select(LicenceOrder).where(LicenceOrder.customer_id == tenant.customer_id))
        ).scalar_one()
    assigning = asyncio.create_task(
        api_alone.post(f"/licence-orders/{order.id}/assign", headers=tenant.partner_manager.headers)
    )
    await asyncio.sleep(1)
    workers.append(start_worker(dev_server, settings))
    await request
    await assigning
    handle = dev_server.client.get_workflow_handle(f"licence-order-{order.id}")

    async def closed() -> bool:
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await until(closed, 120)
    async with sessions() as session:
        decided = await session.get_one(LicenceOrder, order.id, populate_existing=True)
        block_id = (
            await session.execute(select(LicenceBlock.id).where(LicenceBlock.order_id == order.id))
        ).scalar_one()
    term = await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).describe()
    assert (decided.status, decided.decision_key is not None, term.status) == (
        "assigned",
        True,
        WorkflowExecutionStatus.RUNNING,
    )
    assert len(smtp.inbox.to(tenant.customer_manager.email, about=" assigned ")) == 1


async def test_a_worker_killed_while_orders_are_assigned_leaves_each_assigned_once(
    api_alone: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    workers: list[subprocess.Popen[bytes]],
) -> None:
    tenant = await factories.tenant(sessions, stock=100)
    workers.append(start_worker(dev_server, settings))
    orders = [
        (
            await api_alone.post(
                f"/customers/{tenant.customer_id}/licence-orders",
                json={"quantity": 2},
                headers=tenant.customer_manager.headers,
            )
        ).json()
        for _ in range(ORDERS)
    ]
    assigning = [
        asyncio.create_task(api_alone.post(f"/licence-orders/{o['id']}/assign", headers=tenant.partner_manager.headers))
        for o in orders
    ]
    await asyncio.sleep(0.3)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    workers.append(start_worker(dev_server, settings))
    await asyncio.gather(*assigning)  # some answer 200, some 503 (the work goes on): the state below is what counts

    async def all_assigned_and_emailed() -> bool:
        statuses = [
            (await api_alone.get(f"/licence-orders/{o['id']}", headers=tenant.partner_manager.headers)).json()["status"]
            for o in orders
        ]
        # Each distinct message (a resent one counts once): one whose writer was killed goes once its claim lapses.
        received = {str(m["Message-ID"]) for m in smtp.inbox.to(tenant.customer_manager.email)}
        return statuses == ["assigned"] * ORDERS and len(received) >= ORDERS

    await until(all_assigned_and_emailed, 240)
    async with sessions() as session:
        licences = (
            await session.execute(
                select(func.count()).select_from(Licence).where(Licence.customer_id == tenant.customer_id)
            )
        ).scalar_one()
        sent = (
            await session.execute(
                select(func.count())
                .select_from(OutboxEmail)
                .where(OutboxEmail.recipient == tenant.customer_manager.email)
            )
        ).scalar_one()
    stock = (await api_alone.get(f"/partners/{tenant.partner_id}", headers=tenant.partner_manager.headers)).json()
    # A worker killed between the relay's "250" and the outbox record resends that message on retry: the same
    # message, with the same Message-ID, which mail systems recognise. Distinct messages are counted.
    delivered = {str(m["Message-ID"]) for m in smtp.inbox.to(tenant.customer_manager.email)}
    assert (stock["licence_stock"], licences, sent, len(delivered)) == (
        100 - 2 * ORDERS,
        2 * ORDERS,
        ORDERS,
        ORDERS,
    )


def _dev_server(state: Path, port: int) -> subprocess.Popen[bytes]:
    args = [
        installed_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(state),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--headless",
        "--log-level",
        "error",
    ]
    for key in ALL_KEYS:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def _connect(port: int) -> Client:
    for _ in range(150):
        try:
            return await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
        except RuntimeError:
            await asyncio.sleep(0.2)
    raise AssertionError("the dev server did not come up")


async def test_a_block_expires_once_when_the_server_is_killed_before_its_expiry(
    tmp_path: Path, settings: Settings, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    port, state = free_port(), tmp_path / "temporal.db"
    server = _dev_server(state, port)
    try:
        client = await _connect(port)
        block = await factories.short_block_with_a_learner(sessions, tenant, seconds=6)
        async with sessions() as session:
            customer = await session.get_one(Customer, tenant.customer_id)
        term_settings = settings.model_copy(update={"renewal_reminders": ""})
        async with build_worker(client, term_settings, sessions):
            await start_block_term(client, term_settings, customer, block)
        os.killpg(server.pid, signal.SIGKILL)  # no goodbye: the server dies holding the timer
        server.wait()
        killed_at = datetime.now(UTC)
        await asyncio.sleep((block.expires_at + timedelta(seconds=1) - datetime.now(UTC)).total_seconds())
        server = _dev_server(state, port)
        client = await _connect(port)
        async with build_worker(client, term_settings, sessions):
            handle = client.get_workflow_handle(block_workflow_id(block.id), result_type=BlockExpired)
            expired: BlockExpired = await handle.result()
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    summaries = [m for m in smtp.inbox.messages if "have expired" in str(m["Subject"])]
    assert killed_at < block.expires_at
    assert (expired.expired_at, expired.licences_expired, expired.learners_expired, len(summaries)) == (
        block.expires_at,
        2,
        1,
        2,
    )
