"""/readyz remembers that the namespace had our search attributes only until a workflow start is refused for
lacking one (Temporal replaced under the API: a new dev server, a cluster rebuilt, the attributes removed); then it
asks again, and names what is missing."""

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.main import create_app
from licensing.config import Settings
from licensing.temporal import register_search_attributes
from tests import factories
from tests.processes import local_temporal
from tests.smtp_server import free_port


async def test_readyz_is_not_ready_when_a_new_temporal_lacks_the_search_attributes(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    port = free_port()
    first = await local_temporal(port)
    app = create_app(settings, sessions=sessions, temporal=first.client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        try:
            await register_search_attributes(first.client, "default")
            assert (await http.get("/readyz")).status_code == 200
        finally:
            await first.shutdown()
        second = await local_temporal(port)  # Temporal comes back as a new server: none of our attributes
        try:
            order = await http.post(
                f"/api/v1/customers/{tenant.customer_id}/licence-orders",
                json={"quantity": 1},
                headers=tenant.customer_manager.headers,
            )
            for _ in range(50):  # the client has reconnected once a start is refused for the attributes
                if "search attribute" in order.text:
                    break
                await asyncio.sleep(0.2)
                order = await http.post(
                    f"/api/v1/customers/{tenant.customer_id}/licence-orders",
                    json={"quantity": 1},
                    headers=tenant.customer_manager.headers,
                )
            ready = await http.get("/readyz")
        finally:
            await second.shutdown()
    assert order.status_code == 503 and "search attribute" in order.text, order.text
    assert ready.status_code == 503, ready.text
    assert "lacks the search attributes" in ready.text
