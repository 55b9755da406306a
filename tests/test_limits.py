"""Limits against unrestricted consumption, and mass assignment refused."""

import asyncio
import uuid

import httpx
import pytest
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from api import order_workflows, schemas
from db.models import LicenceOrder
from licensing.config import Settings
from payloads.common import Actor, Role
from tests.factories import Tenant
from tests.test_api_orders import request_licences


def _request_models() -> list[type[BaseModel]]:
    return [
        m
        for m in vars(schemas).values()
        if isinstance(m, type) and issubclass(m, schemas.Request) and m is not schemas.Request
    ]


@pytest.mark.parametrize("model", _request_models(), ids=lambda m: m.__name__)
def test_every_request_body_refuses_fields_a_client_must_not_set(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/customers/{customer}/learners", {"email": "x@example.com", "name": "X", "licence_status": "active"}),
        ("/customers/{customer}/learners", {"email": "x@example.com", "name": "X", "customer_id": "{other}"}),
        ("/customers/{customer}/licence-orders", {"quantity": 1, "status": "assigned"}),
        (
            "/users",
            {
                "email": "x@example.com",
                "name": "X",
                "role": "customer_manager",
                "customer_id": "{customer}",
                "token": "lic_mine",
            },
        ),
    ],
)
async def test_fields_a_client_must_not_set_are_422(
    api: httpx.AsyncClient, tenant: Tenant, path: str, body: dict[str, str]
) -> None:
    filled = {
        k: (v.format(customer=tenant.customer_id, other=uuid.uuid4()) if isinstance(v, str) else v)
        for k, v in body.items()
    }
    response = await api.post(
        path.format(customer=tenant.customer_id), json=filled, headers=tenant.partner_manager.headers
    )
    assert response.status_code == 422


async def test_a_json_body_over_the_cap_is_413(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        content=b'{"email": "a@b.io", "name": "' + b"x" * 2_000_000 + b'"}',
        headers={**tenant.customer_manager.headers, "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["detail"]) == (413, "the request body is larger than 1 MB")


class TestOpenRequests:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"max_open_orders_per_customer": 2})

    async def test_a_customer_cannot_flood_its_partner_with_requests(
        self, api: httpx.AsyncClient, tenant: Tenant
    ) -> None:
        for _ in range(2):
            await request_licences(api, tenant, 1)
        third = await api.post(
            f"/customers/{tenant.customer_id}/licence-orders",
            json={"quantity": 1},
            headers=tenant.customer_manager.headers,
        )
        assert (third.status_code, "already has 2 requests waiting" in third.json()["detail"]) == (409, True)

    async def test_requests_made_at_once_at_the_limit_cannot_all_pass(
        self, api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        """Each passes the API's early check (none is saved yet); saving counts again under a lock."""
        responses = await asyncio.gather(
            *(
                api.post(
                    f"/customers/{tenant.customer_id}/licence-orders",
                    json={"quantity": 1},
                    headers=tenant.customer_manager.headers,
                )
                for _ in range(6)
            )
        )
        assert sorted(r.status_code for r in responses) == [201, 201, 409, 409, 409, 409]
        assert all("already has 2 requests waiting" in r.json()["detail"] for r in responses if r.status_code == 409)
        async with sessions() as session:
            saved = await session.scalar(
                select(func.count()).select_from(LicenceOrder).where(LicenceOrder.customer_id == tenant.customer_id)
            )
        assert saved == 2

    async def test_a_request_refused_when_saved_ends_its_workflow_without_an_order(
        self,
        api: httpx.AsyncClient,
        tenant: Tenant,
        settings: Settings,
        dev_server: WorkflowEnvironment,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        """Past the API's check (as a request racing another would be), the saving transaction refuses it: the
        caller gets the reason, no order exists, and the workflow completes, marked `refused` for operators."""
        for _ in range(2):
            await request_licences(api, tenant, 1)
        actor = Actor(user_id=tenant.customer_manager.id, role=Role.CUSTOMER_MANAGER)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await order_workflows.request_order(
                dev_server.client,
                settings,
                order_id=uuid.uuid4(),
                partner_id=tenant.partner_id,
                customer_id=tenant.customer_id,
                quantity=1,
                actor=actor,
            )
        cause = refused.value.cause
        assert isinstance(cause, ApplicationError)
        assert (cause.type, "already has 2 requests waiting" in cause.message) == ("Conflict", True)
        query = f'CustomerId = "{tenant.customer_id}" AND OrderStatus = "refused"'
        for _ in range(100):  # visibility is eventually consistent
            found = [w async for w in dev_server.client.list_workflows(query)]
            if found and found[0].status is WorkflowExecutionStatus.COMPLETED:
                break
            await asyncio.sleep(0.1)
        assert [w.status for w in found] == [WorkflowExecutionStatus.COMPLETED]
        handle = dev_server.client.get_workflow_handle(found[0].id)
        assert await handle.result() is None
        async with sessions() as session:
            saved = await session.scalar(
                select(func.count()).select_from(LicenceOrder).where(LicenceOrder.customer_id == tenant.customer_id)
            )
        assert saved == 2
        order_id = found[0].id.removeprefix("licence-order-")
        late = await api.post(f"/licence-orders/{order_id}/assign", headers=tenant.partner_manager.headers)
        assert late.status_code == 404
