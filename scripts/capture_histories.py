"""Capture fresh histories of every workflow type, open and closed, into tests/histories/ for the replay test.

Run `make histories` (or `.venv/bin/python -m scripts.capture_histories`) after changing a workflow *on purpose*
and commit the new files beside the old ones: old histories must keep replaying (see docs/changing-workflows.md).
It starts its own Temporal dev server, SQLite database and SMTP sink; nothing else is needed.
"""

import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api import order_workflows
from api.main import create_app
from db import blocks
from db.migrate import ROOT, upgrade_to_head
from db.models import Customer
from db.session import create_engine, create_session_factory
from licensing.config import Settings
from licensing.orders import order_workflow_id
from licensing.temporal import build_worker
from licensing.terms import start_block_term
from payloads.blocks import ExpireNow
from payloads.common import SYSTEM, Actor, Role
from rules.licences import BlockKind
from tests import factories
from tests.smtp_server import SmtpServer
from workflows.block import LicenceBlockWorkflow, block_workflow_id
from workflows.search import ALL_KEYS

OUT = ROOT / "tests" / "histories"


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the workflow did not get there in time")
        await asyncio.sleep(0.2)


async def _save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (OUT / f"{name}.json").write_text(history.to_json())
    print(f"saved {name}.json ({len(history.events)} events)")


async def _closed(handle: WorkflowHandle[Any, Any]) -> bool:
    return (await handle.describe()).close_time is not None


async def capture(workdir: Path) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=shutil.which("temporal", path=str(Path(sys.executable).parent)),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
    )
    url = f"sqlite:///{workdir / 'licensing.db'}"
    upgrade_to_head(url)
    engine = create_engine(url)
    sessions = create_session_factory(engine)
    with SmtpServer() as smtp:
        settings = Settings(
            database_url=url,
            task_queue="capture",
            smtp_port=smtp.port,
            licence_term="PT4S",
            renewal_reminders="PT2S",
            order_reminder_after="PT1S",
            trial_term="P14D",
        )
        app = create_app(settings, sessions=sessions, temporal=env.client)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://capture/api/v1") as api:
            async with build_worker(env.client, settings, sessions):
                await _scenarios(env.client, api, sessions, settings)
                tenant = await factories.tenant(sessions)
                late = (
                    await api.post(
                        f"/customers/{tenant.customer_id}/licence-orders",
                        json={"quantity": 1},
                        headers=tenant.customer_manager.headers,
                    )
                ).json()
            await asyncio.sleep(3.5)  # reminders every second: three fall due while no worker runs
            async with build_worker(env.client, settings, sessions):
                await _late_reminders(env.client, api, sessions, settings, smtp, tenant, late["id"])
                await _reminder_emails_refused(env.client, sessions, settings, smtp, tenant)
    await engine.dispose()
    await env.shutdown()


async def _refused(
    client: Client, api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """A request that passed the API's check while another took the customer's last waiting place (here: the
    limit is one, and the request goes straight to its workflow): saving it refuses it."""
    tenant = await factories.tenant(sessions)
    cm = tenant.customer_manager.headers
    waiting = await api.post(f"/customers/{tenant.customer_id}/licence-orders", json={"quantity": 1}, headers=cm)
    order_id = uuid.uuid4()
    with contextlib.suppress(WorkflowUpdateFailedError):
        await order_workflows.request_order(
            client,
            settings.model_copy(update={"max_open_orders_per_customer": 1}),
            order_id=order_id,
            partner_id=tenant.partner_id,
            customer_id=tenant.customer_id,
            quantity=1,
            actor=Actor(user_id=tenant.customer_manager.id, role=Role.CUSTOMER_MANAGER),
        )
    await _until(lambda: _closed(client.get_workflow_handle(order_workflow_id(order_id))))
    await _save(client, order_workflow_id(order_id), "order-refused-closed")
    await api.post(f"/licence-orders/{waiting.json()['id']}/cancel", headers=cm)


async def _late_reminders(
    client: Client,
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp: SmtpServer,
    tenant: factories.Tenant,
    order_id: str,
) -> None:
    """Reminders whose times passed while no worker ran: the order sends one, numbered as the last that fell due
    (patch one-late-reminder); a term started after both its renewal reminders' times sends only the second
    (patch late-renewal-reminders-passed-over)."""
    pm = tenant.partner_manager.email
    late = re.compile(r"\(reminder [3-9]\)")
    await _until(lambda: _async(any(late.search(_text(m)) for m in smtp.inbox.to(pm))))
    await api.post(f"/licence-orders/{order_id}/cancel", headers=tenant.customer_manager.headers)
    await _until(lambda: _closed(client.get_workflow_handle(f"licence-order-{order_id}")))
    await _save(client, f"licence-order-{order_id}", "order-late-reminder-closed")

    now = datetime.now(UTC)
    async with sessions.begin() as session:
        customer = await session.get_one(Customer, tenant.customer_id)
        block = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=2,
            starts_at=now - timedelta(seconds=10),
            expires_at=now + timedelta(seconds=2),
        )
    late_term = settings.model_copy(update={"renewal_reminders": "PT5S,PT4S"})  # both 2 - 3 seconds ago
    await start_block_term(client, late_term, customer, block)
    term = client.get_workflow_handle(block_workflow_id(block.id))
    await _until(lambda: _closed(term))
    await _save(client, term.id, "block-late-reminders-closed")


async def _reminder_emails_refused(
    client: Client,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    smtp: SmtpServer,
    tenant: factories.Tenant,
) -> None:
    """A renewal reminder whose emails the relay refuses at once: they are delivered beside the term, which expires
    meanwhile (patch reminder-emails-beside-the-term)."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        customer = await session.get_one(Customer, tenant.customer_id)
        block = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=1,
            starts_at=now,
            expires_at=now + timedelta(seconds=4),
        )
    # The reminder's emails (to both sides) are refused at once, and one of them at its first delivery too.
    smtp.inbox.refusals.extend(["421 4.3.2 try again later"] * 2)
    await start_block_term(client, settings, customer, block)
    term = client.get_workflow_handle(block_workflow_id(block.id))
    await _until(lambda: _closed(term))
    await _save(client, term.id, "block-reminder-emails-refused-closed")


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return "" if body is None else str(body.get_content())


async def _async(value: bool) -> bool:
    return value


async def _scenarios(
    client: Client, api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    tenant = await factories.tenant(sessions)
    pm, cm = tenant.partner_manager.headers, tenant.customer_manager.headers
    orders = f"/customers/{tenant.customer_id}/licence-orders"

    waiting = (await api.post(orders, json={"quantity": 2}, headers=cm)).json()
    waiting_id = f"licence-order-{waiting['id']}"
    await asyncio.sleep(2.5)  # two reminders go out while it waits
    await _save(client, waiting_id, "order-waiting-open")

    assigned = (await api.post(f"/licence-orders/{waiting['id']}/assign", headers=pm)).json()
    await _until(lambda: _closed(client.get_workflow_handle(waiting_id)))
    await _save(client, waiting_id, "order-assigned-closed")

    rejected = (await api.post(orders, json={"quantity": 3}, headers=cm)).json()
    await api.post(f"/licence-orders/{rejected['id']}/reject", json={"reason": "budget"}, headers=pm)
    await _until(lambda: _closed(client.get_workflow_handle(f"licence-order-{rejected['id']}")))
    await _save(client, f"licence-order-{rejected['id']}", "order-rejected-closed")

    cancelled = (await api.post(orders, json={"quantity": 1}, headers=cm)).json()
    await api.post(f"/licence-orders/{cancelled['id']}/cancel", headers=cm)
    await _until(lambda: _closed(client.get_workflow_handle(f"licence-order-{cancelled['id']}")))
    await _save(client, f"licence-order-{cancelled['id']}", "order-cancelled-closed")

    await _refused(client, api, sessions, settings)

    # Cancelled by hand (the Web UI): the order is cancelled by the system (patch close-cancelled-orders).
    by_hand = (await api.post(orders, json={"quantity": 1}, headers=cm)).json()
    await client.get_workflow_handle(f"licence-order-{by_hand['id']}").cancel()
    await _until(lambda: _closed(client.get_workflow_handle(f"licence-order-{by_hand['id']}")))
    await _save(client, f"licence-order-{by_hand['id']}", "order-cancelled-by-hand-closed")

    # Terminated by hand, then assigned through the API: a run started again, the decision its first step.
    resumed = (await api.post(orders, json={"quantity": 1}, headers=cm)).json()
    await client.get_workflow_handle(f"licence-order-{resumed['id']}").terminate("captured: terminated by hand")
    await api.post(f"/licence-orders/{resumed['id']}/assign", headers=pm)
    await _until(lambda: _closed(client.get_workflow_handle(f"licence-order-{resumed['id']}")))
    await _save(client, f"licence-order-{resumed['id']}", "order-resumed-assigned-closed")

    block_id = f"licence-block-{assigned['block']['id']}"
    await api.post(
        f"/customers/{tenant.customer_id}/learners", json={"email": "lee@example.com", "name": "Lee"}, headers=cm
    )
    await _until(lambda: _closed(client.get_workflow_handle(block_id)))
    await _save(client, block_id, "block-expired-closed")

    trial = (
        await api.post(
            f"/partners/{tenant.partner_id}/customers",
            json={"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial"},
            headers=pm,
        )
    ).json()
    trial_blocks = (await api.get(f"/customers/{trial['id']}/licences", headers=pm)).json()["blocks"]
    trial_id = f"licence-block-{trial_blocks[0]['id']}"
    await _save(client, trial_id, "block-running-open")
    await client.get_workflow_handle_for(LicenceBlockWorkflow.run, trial_id).execute_update(
        LicenceBlockWorkflow.expire_now, ExpireNow(actor=SYSTEM)
    )
    await _until(lambda: _closed(client.get_workflow_handle(trial_id)))
    await _save(client, trial_id, "block-expired-early-closed")

    csv = b"email,name\r\n" + b"".join(b"p%d@example.com,P %d\r\n" % (n, n) for n in range(5)) + b"bad,Bad\r\n"
    started = (
        await api.post(
            f"/customers/{tenant.customer_id}/learner-imports",
            files={"file": ("staff.csv", csv, "text/csv")},
            headers=cm,
        )
    ).json()
    import_id = f"learner-import-{started['id']}"
    await _until(lambda: _closed(client.get_workflow_handle(import_id)))
    await _save(client, import_id, "import-finished-closed")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(capture(Path(workdir)))


if __name__ == "__main__":
    main()
