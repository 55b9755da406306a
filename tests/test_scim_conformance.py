"""scim2-tester's `check_server` against the API served by uvicorn, as Entra ID would reach it over HTTP."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester.utils import CheckResult, Status
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db import scim
from licensing.config import Settings
from payloads.common import Actor, Role
from tests import factories, processes


@pytest.fixture
def served_api(dev_server: WorkflowEnvironment, settings: Settings) -> Iterator[str]:
    with processes.served_api(dev_server.client.service_client.config.target_host, settings) as url:
        yield f"{url}/scim/v2"


def _check(url: str, token: str) -> list[CheckResult]:
    client = SyncSCIMClient(httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}))
    client.discover()
    return check_server(client)


async def test_scim2_tester_finds_no_error(served_api: str, sessions: async_sessionmaker[AsyncSession]) -> None:
    tenant = await factories.tenant(sessions)
    async with sessions.begin() as session:
        _, token = await scim.create_token(
            session,
            customer_id=tenant.customer_id,
            actor=Actor(user_id=tenant.customer_manager.id, role=Role.CUSTOMER_MANAGER),
            at=datetime.now(UTC),
        )
    results = await asyncio.to_thread(_check, served_api, token)
    failures = [
        f"{r.status.name} {r.title}: {r.reason}" for r in results if r.status in (Status.ERROR, Status.CRITICAL)
    ]
    assert (len(results) > 30, failures) == (True, [])
