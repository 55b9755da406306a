"""A 50,000-row import survives its worker being SIGKILLed mid-import: another worker finishes it, and nobody
is created twice. The workers are real processes (`python worker.py`), as in production."""

import asyncio
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db.models import Learner
from licensing.config import Settings
from tests import factories
from tests.factories import Tenant
from tests.processes import start_worker
from tests.test_learner_import import csv_of

ROWS = 50_000


async def _progress(api: httpx.AsyncClient, tenant: Tenant, import_id: str) -> dict[str, Any]:
    url = f"/customers/{tenant.customer_id}/learner-imports/{import_id}"
    return dict((await api.get(url, headers=tenant.customer_manager.headers)).json())


async def _until(
    api: httpx.AsyncClient,
    tenant: Tenant,
    import_id: str,
    done: Callable[[dict[str, Any]], bool],
    within_seconds: float,
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not done(progress := await _progress(api, tenant, import_id)):
        assert asyncio.get_running_loop().time() < deadline, f"no progress in time: {progress}"
        await asyncio.sleep(0.2)
    return progress


async def test_a_killed_worker_mid_import_finishes_on_another_without_duplicates(
    api_alone: httpx.AsyncClient,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    workers: list[subprocess.Popen[bytes]],
) -> None:
    tenant = await factories.tenant(sessions)
    await factories.block(sessions, tenant, quantity=100, days=365)
    content = csv_of("email,name", *(f"staff{n}@example.com,Staff {n}" for n in range(ROWS)))
    response = await api_alone.post(
        f"/customers/{tenant.customer_id}/learner-imports",
        files={"file": ("staff.csv", content, "text/csv")},
        headers=tenant.customer_manager.headers,
    )
    import_id = response.json()["id"]
    workers.append(start_worker(dev_server, settings))
    midway = await _until(api_alone, tenant, import_id, lambda p: p["processed_rows"] >= 2000, 120)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    workers.append(start_worker(dev_server, settings))
    done = await _until(api_alone, tenant, import_id, lambda p: p["status"] == "finished", 600)
    async with sessions() as session:
        learners = (
            await session.execute(
                select(func.count()).select_from(Learner).where(Learner.customer_id == tenant.customer_id)
            )
        ).scalar_one()
    assert midway["processed_rows"] < ROWS
    assert (done["created"], done["licensed"], done["unlicensed"], done["failed"], learners) == (
        ROWS,
        100,
        ROWS - 100,
        0,
        ROWS,
    )
