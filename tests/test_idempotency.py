"""Idempotency-Key: a repeated POST returns the first answer and does nothing again."""

import hashlib
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import idempotency
from db.models import Learner
from tests.factories import Tenant
from tests.test_api_orders import request_licences, stock


def keyed(tenant_headers: dict[str, str], key: str) -> dict[str, str]:
    return {**tenant_headers, "Idempotency-Key": key}


async def _learners(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Learner).where(Learner.customer_id == tenant.customer_id)
        return int((await session.execute(query)).scalar_one())


async def test_a_repeat_returns_the_first_answer_and_creates_nothing_again(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    url, body = f"/customers/{tenant.customer_id}/learners", {"email": "once@example.com", "name": "Once"}
    first = await api.post(url, json=body, headers=keyed(tenant.customer_manager.headers, "add-once-1"))
    again = await api.post(url, json=body, headers=keyed(tenant.customer_manager.headers, "add-once-1"))
    assert (again.status_code, again.json(), again.headers.get("idempotent-replayed")) == (201, first.json(), "true")
    assert await _learners(sessions, tenant) == 1


async def test_a_repeated_assignment_moves_the_stock_once(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 5)
    headers = keyed(tenant.partner_manager.headers, f"assign-{order['id']}")
    first = await api.post(f"/licence-orders/{order['id']}/assign", headers=headers)
    again = await api.post(f"/licence-orders/{order['id']}/assign", headers=headers)
    assert (first.status_code, again.status_code, again.json() == first.json(), await stock(api, tenant)) == (
        200,
        200,
        True,
        95,
    )


async def test_the_same_key_with_another_body_is_422(api: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/customers/{tenant.customer_id}/learners"
    await api.post(
        url, json={"email": "a@example.com", "name": "A"}, headers=keyed(tenant.customer_manager.headers, "k")
    )
    other = await api.post(
        url, json={"email": "b@example.com", "name": "B"}, headers=keyed(tenant.customer_manager.headers, "k")
    )
    assert other.status_code == 422


async def test_a_repeat_while_the_first_runs_is_409(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    url, body = f"/customers/{tenant.customer_id}/learners", b'{"email": "r@example.com", "name": "R"}'
    caller = hashlib.sha256(tenant.customer_manager.headers["Authorization"].encode()).hexdigest()
    fingerprint = hashlib.sha256(f"/api/v1{url}\n".encode() + body).hexdigest()
    await idempotency.claim(sessions, caller=caller, key="slow", fingerprint=fingerprint, now=datetime.now(UTC))
    response = await api.post(
        url,
        content=body,
        headers={**keyed(tenant.customer_manager.headers, "slow"), "Content-Type": "application/json"},
    )
    assert response.status_code == 409


async def test_keys_belong_to_their_caller(api: httpx.AsyncClient, tenant: Tenant) -> None:
    url = f"/customers/{tenant.customer_id}/learners"
    mine = await api.post(
        url, json={"email": "m@example.com", "name": "M"}, headers=keyed(tenant.customer_manager.headers, "shared")
    )
    theirs = await api.post(
        url, json={"email": "m@example.com", "name": "M"}, headers=keyed(tenant.partner_manager.headers, "shared")
    )
    assert (mine.status_code, theirs.status_code) == (201, 409)  # the partner's call ran: the email is taken


async def test_a_key_older_than_a_day_is_forgotten(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    url = f"/customers/{tenant.customer_id}/learners"
    caller = hashlib.sha256(tenant.customer_manager.headers["Authorization"].encode()).hexdigest()
    await idempotency.claim(
        sessions, caller=caller, key="old", fingerprint="x", now=datetime.now(UTC) - timedelta(hours=25)
    )
    response = await api.post(
        url, json={"email": "o@example.com", "name": "O"}, headers=keyed(tenant.customer_manager.headers, "old")
    )
    assert response.status_code == 201


def test_the_openapi_names_the_header_on_every_post(app: FastAPI) -> None:
    posts = [
        op
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for m, op in ops.items()
        if m == "post"
    ]
    assert all(any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])) for op in posts) and posts
