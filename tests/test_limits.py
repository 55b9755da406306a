"""Limits against unrestricted consumption, and mass assignment refused."""

import uuid

import httpx
import pytest
from pydantic import BaseModel

from api import schemas
from licensing.config import Settings
from tests.factories import Tenant
from tests.smtp_server import SmtpServer
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
    assert (response.status_code, response.json()["detail"]) == (413, "the request body is larger than 1048576 bytes")


class TestOpenRequests:
    @pytest.fixture
    def settings(self, database_url: str, smtp: SmtpServer) -> Settings:
        return Settings(
            database_url=database_url,
            task_queue=f"test-{uuid.uuid4()}",
            smtp_port=smtp.port,
            max_open_orders_per_customer=2,
        )

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
