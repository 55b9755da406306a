"""Idempotency-Key: a repeated POST returns the first answer and does nothing again."""

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import sealed
from db import idempotency
from db.models import IdempotentRequest, Learner
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


def _learner_body(name: str) -> bytes:
    return json.dumps({"email": f"{name.lower()}@example.com", "name": name}).encode()


@dataclass
class _Claims:
    """A customer's manager adding learners with keys, and its keys' claims as the middleware makes them."""

    api: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    tenant: Tenant
    claimed_at: dict[str, datetime] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"/customers/{self.tenant.customer_id}/learners"

    def _caller(self) -> str:
        return hashlib.sha256(self.tenant.customer_manager.headers["Authorization"].encode()).hexdigest()

    async def claim(self, key: str, body: bytes, *, ago: timedelta = timedelta(0)) -> None:
        fingerprint = hashlib.sha256(f"/api/v1{self.url}\n".encode() + body).hexdigest()
        claimed = await idempotency.claim(
            self.sessions, caller=self._caller(), key=key, fingerprint=fingerprint, now=datetime.now(UTC) - ago
        )
        assert claimed.new and claimed.claimed_at is not None
        self.claimed_at[key] = claimed.claimed_at

    async def fail(self, key: str) -> None:
        await idempotency.fail(self.sessions, caller=self._caller(), key=key, claimed_at=self.claimed_at[key])

    async def post(self, key: str, body: bytes) -> httpx.Response:
        headers = {**keyed(self.tenant.customer_manager.headers, key), "Content-Type": "application/json"}
        return await self.api.post(self.url, content=body, headers=headers)


@pytest.fixture
def claims(api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> _Claims:
    return _Claims(api, sessions, tenant)


async def test_a_repeat_while_the_first_runs_is_409(claims: _Claims) -> None:
    await claims.claim("slow", _learner_body("R"))
    assert (await claims.post("slow", _learner_body("R"))).status_code == 409


async def test_after_a_failure_on_our_side_the_same_request_runs_again_and_another_is_still_422(
    claims: _Claims,
) -> None:
    """What the middleware records when a request answered 500 or above: its key keeps the request's
    fingerprint, so the key still names that one request."""
    await claims.claim("failed-once", _learner_body("Fay"))
    await claims.fail("failed-once")
    other = await claims.post("failed-once", _learner_body("Other"))
    again = await claims.post("failed-once", _learner_body("Fay"))
    replayed = await claims.post("failed-once", _learner_body("Fay"))
    assert (other.status_code, again.status_code, replayed.status_code, replayed.headers["idempotent-replayed"]) == (
        422,
        201,
        201,
        "true",
    )
    assert await _learners(claims.sessions, claims.tenant) == 1


async def test_two_retries_at_once_after_a_failure_run_once(claims: _Claims) -> None:
    await claims.claim("failed-twice", _learner_body("Twin"))
    await claims.fail("failed-twice")
    answers = await asyncio.gather(*(claims.post("failed-twice", _learner_body("Twin")) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [201, 409]
    assert await _learners(claims.sessions, claims.tenant) == 1


async def test_a_key_whose_request_never_answered_is_taken_over_after_ten_minutes(claims: _Claims) -> None:
    """A server that stopped mid-request (or could not record its failure) left the key running."""
    await claims.claim("stopped-long-ago", _learner_body("Old"), ago=timedelta(minutes=11))
    await claims.claim("stopped-just-now", _learner_body("New"), ago=timedelta(minutes=5))
    answers = [
        await claims.post("stopped-long-ago", _learner_body("Other")),
        await claims.post("stopped-just-now", _learner_body("New")),
        await claims.post("stopped-long-ago", _learner_body("Old")),
    ]
    assert [a.status_code for a in answers] == [422, 409, 201]


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


async def _kept(sessions: async_sessionmaker[AsyncSession], key: str) -> IdempotentRequest:
    async with sessions() as session:
        return (await session.execute(select(IdempotentRequest).where(IdempotentRequest.key == key))).scalar_one()


async def test_a_kept_answer_holds_no_token_and_a_repeat_still_gets_it(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A new directory connection's token is shown once; a retry that lost the first answer gets it too, but the
    database, which keeps tokens only as hashes, does not hold it in the kept answer either."""
    key = f"scim-{tenant.customer_id}"
    url = f"/customers/{tenant.customer_id}/scim-tokens"
    first = await api.post(url, headers=keyed(tenant.customer_manager.headers, key))
    again = await api.post(url, headers=keyed(tenant.customer_manager.headers, key))
    token = first.json()["token"]
    kept = (await _kept(sessions, key)).response_body or b""
    assert (first.status_code, again.status_code, again.headers["idempotent-replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert token.encode() not in kept and b"token" not in kept and kept.startswith(sealed.MARK)


async def test_a_kept_answer_opens_only_under_its_own_key(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    url = f"/customers/{tenant.customer_id}/scim-tokens"
    mine, other = f"own-{tenant.customer_id}", f"other-{tenant.customer_id}"
    for key in (mine, other):
        await api.post(url, headers=keyed(tenant.customer_manager.headers, key))
    moved = (await _kept(sessions, other)).response_body
    async with sessions.begin() as session:
        await session.execute(
            update(IdempotentRequest).where(IdempotentRequest.key == mine).values(response_body=moved)
        )
    again = await api.post(url, headers=keyed(tenant.customer_manager.headers, mine))
    assert (again.status_code, again.json()["detail"]) == (
        422,
        "this Idempotency-Key's earlier answer cannot be read; use a new key",
    )


async def test_keys_whose_day_is_over_are_deleted_with_their_answers(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    for caller in ("someone", "someone else"):
        await idempotency.claim(sessions, caller=caller, key=f"old-{tenant.customer_id}", fingerprint="x", now=long_ago)
    await idempotency.claim(
        sessions, caller="someone", key=f"today-{tenant.customer_id}", fingerprint="x", now=datetime.now(UTC)
    )
    answered = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": f"d-{tenant.customer_id}@example.com", "name": "D"},
        headers=keyed(tenant.customer_manager.headers, f"new-{tenant.customer_id}"),
    )
    async with sessions() as session:
        keys = set((await session.execute(select(IdempotentRequest.key))).scalars())
    assert answered.status_code == 201
    assert (f"old-{tenant.customer_id}" in keys, f"today-{tenant.customer_id}" in keys) == (False, True)


def test_the_openapi_names_the_header_on_every_post(app: FastAPI) -> None:
    posts = [
        op
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/api/v1/")
        for m, op in ops.items()
        if m == "post"
    ]
    assert all(any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])) for op in posts) and posts


async def test_an_attempt_whose_key_was_taken_over_records_neither_its_failure_nor_its_answer(
    claims: _Claims,
) -> None:
    """A request that stalled past ten minutes lost its key to a retry; when it fails at last, the retry (still
    running) keeps the key: a third try is told to wait, not run beside it."""
    await claims.claim("stalled", _learner_body("Stu"), ago=timedelta(minutes=11))
    stalled = claims.claimed_at["stalled"]
    await claims.claim("stalled", _learner_body("Stu"))  # the retry takes it over
    await idempotency.fail(claims.sessions, caller=claims._caller(), key="stalled", claimed_at=stalled)
    await idempotency.remember(
        claims.sessions,
        caller=claims._caller(),
        key="stalled",
        claimed_at=stalled,
        status=201,
        body=b"stale",
        content_type="application/json",
    )
    third = await claims.post("stalled", _learner_body("Stu"))
    assert third.status_code == 409, third.text
    assert await _learners(claims.sessions, claims.tenant) == 0
