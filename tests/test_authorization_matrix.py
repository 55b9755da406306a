"""The authorization matrix, generated from the app's own routes: every route is listed here with what it needs,
and a route added without an entry fails `test_every_route_is_in_the_matrix`. For every route with an object id,
the managers of another tenant get 404 (as if it did not exist) and the owner's data is unchanged; with no token,
401. Lists never hold another tenant's ids."""

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.main import create_app
from tests import factories
from tests.conftest import scim_token
from tests.factories import Tenant
from tests.test_api_learners import add, licences_for
from tests.test_api_orders import request_licences

BEARER, SCIM, PUBLIC = "bearer", "scim", "public"


@dataclass(frozen=True)
class Entry:
    auth: str = BEARER
    body: Any = None
    multipart: bool = False
    tenant_object: bool = True  # the path (or body) names an object of one tenant
    ids: tuple[tuple[str, str], ...] = ()  # (a path's name, the world's id it takes) where they differ


CSV = b"email,name\r\nmatrix@example.com,Matrix\r\n"
MATRIX: dict[str, Entry] = {
    "GET /healthz": Entry(auth=PUBLIC, tenant_object=False),
    "GET /readyz": Entry(auth=PUBLIC, tenant_object=False),
    "POST /api/v1/partners": Entry(body={"name": "Matrix Partner"}, tenant_object=False),
    "GET /api/v1/partners": Entry(tenant_object=False),
    "GET /api/v1/partners/{partner_id}": Entry(),
    "GET /api/v1/partners/{partner_id}/licence-stock": Entry(),
    "POST /api/v1/partners/{partner_id}/licence-stock": Entry(body={"quantity": 5, "reference": "MATRIX"}),
    "POST /api/v1/partners/{partner_id}/customers": Entry(body={"name": "Matrix Co", "account_type": "premium"}),
    "GET /api/v1/partners/{partner_id}/customers": Entry(),
    "POST /api/v1/users": Entry(
        body={"email": "m@example.com", "name": "M", "role": "customer_manager", "customer_id": "{customer_id}"}
    ),
    "GET /api/v1/users/me": Entry(tenant_object=False),
    "GET /api/v1/users": Entry(tenant_object=False),
    "DELETE /api/v1/users/{user_id}": Entry(ids=(("user_id", "manager_id"),)),
    "POST /api/v1/users/{user_id}/token": Entry(ids=(("user_id", "manager_id"),)),
    "GET /api/v1/customers/{customer_id}": Entry(),
    "GET /api/v1/customers/{customer_id}/licences": Entry(),
    "POST /api/v1/customers/{customer_id}/upgrade": Entry(),
    "POST /api/v1/customers/{customer_id}/licence-orders": Entry(body={"quantity": 1}),
    "GET /api/v1/customers/{customer_id}/licence-orders": Entry(),
    "GET /api/v1/partners/{partner_id}/licence-orders": Entry(),
    "GET /api/v1/licence-orders/{order_id}": Entry(),
    "POST /api/v1/licence-orders/{order_id}/assign": Entry(),
    "POST /api/v1/licence-orders/{order_id}/reject": Entry(body={"reason": "mine"}),
    "POST /api/v1/licence-orders/{order_id}/cancel": Entry(),
    "POST /api/v1/customers/{customer_id}/learners": Entry(body={"email": "in@example.com", "name": "In"}),
    "GET /api/v1/customers/{customer_id}/learners": Entry(),
    "GET /api/v1/customers/{customer_id}/learners/{learner_id}": Entry(),
    "DELETE /api/v1/customers/{customer_id}/learners/{learner_id}": Entry(),
    "POST /api/v1/customers/{customer_id}/licence-allocations": Entry(body={"all": "unlicensed"}),
    "POST /api/v1/customers/{customer_id}/learners/{learner_id}/training-records": Entry(
        body={"course": "C", "completed_at": "2026-01-01T00:00:00Z", "score": 1}
    ),
    "POST /api/v1/customers/{customer_id}/learner-imports": Entry(multipart=True),
    "GET /api/v1/customers/{customer_id}/learner-imports/{import_id}": Entry(),
    "GET /api/v1/customers/{customer_id}/reports/training.csv": Entry(),
    "GET /api/v1/customers/{customer_id}/learners/{learner_id}/reports/training.csv": Entry(),
    "POST /api/v1/customers/{customer_id}/scim-tokens": Entry(),
    "GET /api/v1/customers/{customer_id}/scim-tokens": Entry(),
    "DELETE /api/v1/customers/{customer_id}/scim-tokens/{token_id}": Entry(),
    "GET /api/v1/notifications": Entry(tenant_object=False),
    "POST /api/v1/notifications/{notification_id}/read": Entry(),
    "POST /api/v1/notifications/read": Entry(tenant_object=False),
    "GET /api/v1/audit-events": Entry(tenant_object=False),
    "GET /scim/v2/ServiceProviderConfig": Entry(auth=PUBLIC, tenant_object=False),
    "GET /scim/v2/ResourceTypes": Entry(auth=PUBLIC, tenant_object=False),
    "GET /scim/v2/ResourceTypes/{name}": Entry(auth=PUBLIC, tenant_object=False),
    "GET /scim/v2/Schemas": Entry(auth=PUBLIC, tenant_object=False),
    "GET /scim/v2/Schemas/{schema_id}": Entry(auth=PUBLIC, tenant_object=False),
    "GET /scim/v2/Users": Entry(auth=SCIM, tenant_object=False),
    "POST /scim/v2/Users": Entry(auth=SCIM, body={"userName": "s@example.com"}, tenant_object=False),
    "POST /scim/v2/Users/.search": Entry(auth=SCIM, body={}, tenant_object=False),
    "POST /scim/v2/.search": Entry(auth=SCIM, body={}, tenant_object=False),
    "GET /scim/v2/Users/{user_id}": Entry(auth=SCIM),
    "PUT /scim/v2/Users/{user_id}": Entry(auth=SCIM, body={"userName": "taken@example.com", "active": False}),
    "PATCH /scim/v2/Users/{user_id}": Entry(
        auth=SCIM, body={"Operations": [{"op": "replace", "path": "active", "value": False}]}
    ),
    "DELETE /scim/v2/Users/{user_id}": Entry(auth=SCIM),
}


def _routes(app: FastAPI) -> set[str]:
    return {f"{method.upper()} {path}" for path, ops in app.openapi()["paths"].items() for method in ops}


def test_every_route_is_in_the_matrix() -> None:
    assert _routes(create_app()) ^ set(MATRIX) == set()


@dataclass
class World:
    tenant: Tenant
    ids: dict[str, str]
    scim_token: str


async def _world(api: httpx.AsyncClient, tenant: Tenant) -> World:
    await licences_for(api, tenant, 2)
    order = await request_licences(api, tenant, 1)
    learner = await add(api, tenant)
    started = await api.post(
        f"/customers/{tenant.customer_id}/learner-imports",
        files={"file": ("m.csv", CSV, "text/csv")},
        headers=tenant.customer_manager.headers,
    )
    token = await scim_token(api, tenant)
    tokens = await api.get(f"/customers/{tenant.customer_id}/scim-tokens", headers=tenant.customer_manager.headers)
    notices = await api.get("/notifications", headers=tenant.partner_manager.headers)  # of the order requested
    ids = {
        "partner_id": str(tenant.partner_id),
        "customer_id": str(tenant.customer_id),
        "order_id": order["id"],
        "learner_id": learner["id"],
        "user_id": learner["id"],  # the directory's user: a learner
        "manager_id": str(tenant.customer_manager.id),
        "import_id": started.json()["id"],
        "token_id": tokens.json()["items"][0]["id"],
        "notification_id": notices.json()["items"][0]["id"],
        "name": "User",
        "schema_id": "urn:ietf:params:scim:schemas:core:2.0:User",
    }
    return World(tenant=tenant, ids=ids, scim_token=token)


async def _snapshot(api: httpx.AsyncClient, world: World) -> Any:
    owner, ids = world.tenant.partner_manager.headers, world.ids
    reads = [
        f"/partners/{ids['partner_id']}",
        f"/customers/{ids['customer_id']}",
        f"/licence-orders/{ids['order_id']}",
        f"/customers/{ids['customer_id']}/learners",
        f"/customers/{ids['customer_id']}/licences",
        f"/customers/{ids['customer_id']}/scim-tokens",
        "/notifications",
    ]
    return [(await api.get(url, headers=owner)).json() for url in reads]


async def _call(app: FastAPI, route: str, entry: Entry, ids: dict[str, str], headers: dict[str, str]) -> httpx.Response:
    method, path = route.split(" ", 1)
    ids = ids | {name: ids[taken] for name, taken in entry.ids}
    url = path.format(**ids)
    body = entry.body
    if isinstance(body, dict):
        body = {k: (v.format(**ids) if isinstance(v, str) else v) for k, v in body.items()}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        if entry.multipart:
            return await client.request(method, url, files={"file": ("m.csv", CSV, "text/csv")}, headers=headers)
        return await client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize("route", sorted(r for r, e in MATRIX.items() if e.tenant_object))
async def test_another_tenant_gets_404_and_the_owner_keeps_its_data(
    app: FastAPI,
    api: httpx.AsyncClient,
    tenant: Tenant,
    route: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner, intruder = await _world(api, tenant), await _world(api, await factories.tenant(sessions))
    entry = MATRIX[route]
    before = await _snapshot(api, owner)
    if entry.auth == SCIM:
        callers = {"other directory": {"Authorization": f"Bearer {intruder.scim_token}"}}
    else:
        callers = {
            "other partner manager": intruder.tenant.partner_manager.headers,
            "other customer manager": intruder.tenant.customer_manager.headers,
        }
    answers = {
        who: (await _call(app, route, entry, owner.ids, headers)).status_code for who, headers in callers.items()
    }
    no_token = (await _call(app, route, entry, owner.ids, {})).status_code
    # The wrong kind of credential opens nothing: a SCIM token is not a user's token, and the other way round.
    crossed = (
        owner.tenant.customer_manager.headers if entry.auth == SCIM else {"Authorization": f"Bearer {owner.scim_token}"}
    )
    wrong_kind = (await _call(app, route, entry, owner.ids, crossed)).status_code
    assert (answers, no_token, wrong_kind) == (dict.fromkeys(callers, 404), 401, 401)
    assert await _snapshot(api, owner) == before


@pytest.mark.parametrize("route", sorted(r for r, e in MATRIX.items() if r.startswith("GET") and e.auth != PUBLIC))
async def test_lists_hold_only_the_callers_tenant(
    app: FastAPI,
    api: httpx.AsyncClient,
    tenant: Tenant,
    route: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    other, mine = await _world(api, tenant), await _world(api, await factories.tenant(sessions))
    entry = MATRIX[route]
    if entry.auth == SCIM:
        callers = [{"Authorization": f"Bearer {mine.scim_token}"}]
    else:
        callers = [mine.tenant.partner_manager.headers, mine.tenant.customer_manager.headers]
    leaked = []
    for headers in callers:
        text = (await _call(app, route, entry, mine.ids, headers)).text
        leaked += [
            name
            for name in ("partner_id", "customer_id", "order_id", "learner_id", "import_id", "token_id")
            if other.ids[name] in text
        ]
    assert leaked == []


@pytest.mark.parametrize("route", sorted(r for r, e in MATRIX.items() if e.auth == PUBLIC))
async def test_public_routes_answer_without_a_token(app: FastAPI, route: str) -> None:
    response = await _call(
        app, route, MATRIX[route], {"name": "User", "schema_id": "urn:ietf:params:scim:schemas:core:2.0:User"}, {}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("route", sorted(r for r, e in MATRIX.items() if e.auth == BEARER and not e.tenant_object))
async def test_caller_routes_need_a_token(app: FastAPI, route: str) -> None:
    response = await _call(app, route, MATRIX[route], {}, {})
    assert response.status_code == 401
