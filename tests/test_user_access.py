"""Someone who left, a token lost or leaked: a user's access is removed (its token stops working at once, it is
told nothing any more) or it gets a new token (the old one stops working), by the people who may create it."""

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.deps import INVALID_TOKEN
from payloads.common import Role
from tests import factories
from tests.factories import Person, Tenant
from tests.smtp_server import SmtpServer
from tests.test_api_orders import assign, eventually, request_licences
from tests.test_idempotency import keyed


async def _colleague(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> Person:
    return await factories.person(sessions, Role.CUSTOMER_MANAGER, customer_id=tenant.customer_id)


async def _me(api: httpx.AsyncClient, who: Person | str) -> int:
    token = who if isinstance(who, str) else who.token
    return (await api.get("/users/me", headers={"Authorization": f"Bearer {token}"})).status_code


async def _trail(api: httpx.AsyncClient, tenant: Tenant, subject: Person) -> list[dict[str, Any]]:
    events = (await api.get("/audit-events", headers=tenant.partner_manager.headers)).json()["items"]
    return [
        {k: e[k] for k in ("action", "actor_id", "details")}
        for e in reversed(events)
        if e["subject_id"] == str(subject.id)
    ]


async def test_a_partner_removes_a_customer_managers_access_and_restores_it_with_a_new_token(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    leaver, pm = await _colleague(sessions, tenant), tenant.partner_manager
    removed = await api.delete(f"/users/{leaver.id}", headers=pm.headers)
    again = await api.delete(f"/users/{leaver.id}", headers=pm.headers)
    refused = await api.get("/users/me", headers=leaver.headers)
    [listed] = [u for u in (await api.get("/users", headers=pm.headers)).json()["items"] if u["id"] == str(leaver.id)]
    restored = await api.post(f"/users/{leaver.id}/token", headers=pm.headers)
    new_token = restored.json()["token"]
    assert (removed.status_code, again.status_code, refused.status_code, listed["access_removed_at"] is None) == (
        204,
        204,
        401,
        False,
    )
    assert (restored.status_code, restored.json()["access_removed_at"], await _me(api, new_token)) == (201, None, 200)
    assert await _me(api, leaver) == 401  # the old token stays dead
    assert await _trail(api, tenant, leaver) == [
        {"action": "user.created", "actor_id": None, "details": {"role": "customer_manager"}},
        {"action": "user.access_removed", "actor_id": str(pm.id), "details": {}},
        {"action": "user.token_issued", "actor_id": str(pm.id), "details": {"restored": True}},
    ]


async def test_anyone_replaces_their_own_token(api: httpx.AsyncClient, tenant: Tenant) -> None:
    me = tenant.customer_manager
    issued = await api.post(f"/users/{me.id}/token", headers=me.headers)
    new_token = issued.json()["token"]
    assert (issued.status_code, await _me(api, me), await _me(api, new_token)) == (201, 401, 200)
    assert new_token != me.token and new_token.startswith("lic_")


async def test_a_manager_whose_access_was_removed_gets_no_more_emails_or_notifications(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, smtp: SmtpServer
) -> None:
    leaver, stays = await _colleague(sessions, tenant), tenant.customer_manager
    await api.delete(f"/users/{leaver.id}", headers=tenant.partner_manager.headers)
    order = await request_licences(api, tenant, 1)
    assigned = await assign(api, order, tenant.partner_manager)
    await eventually(lambda: smtp.inbox.to(stays.email))
    restored = (await api.post(f"/users/{leaver.id}/token", headers=tenant.partner_manager.headers)).json()
    notices = await api.get("/notifications", headers={"Authorization": f"Bearer {restored['token']}"})
    assert (assigned.status_code, smtp.inbox.to(leaver.email), notices.json()["items"]) == (200, [], [])


@pytest.mark.parametrize(
    ("who", "whom", "status", "detail"),
    [
        (
            "partner manager",
            "partner colleague",
            403,
            "a partner's managers are managed by an operator; ask your operator",
        ),
        ("partner manager", "itself", 403, "you cannot remove your own access; ask an operator"),
        (
            "customer manager",
            "customer colleague",
            403,
            "customer managers cannot manage other users; ask your partner",
        ),
        ("customer manager", "partner manager", 404, None),
        ("other partner manager", "customer manager", 404, None),
        ("other customer manager", "customer manager", 404, None),
        ("operator", "partner manager", 204, None),
    ],
)
async def test_who_may_remove_whose_access(
    api: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    operator: Person,
    who: str,
    whom: str,
    status: int,
    detail: str | None,
) -> None:
    other = await factories.tenant(sessions)
    people = {
        "partner manager": tenant.partner_manager,
        "customer manager": tenant.customer_manager,
        "customer colleague": await _colleague(sessions, tenant),
        "partner colleague": await factories.person(sessions, Role.PARTNER_MANAGER, partner_id=tenant.partner_id),
        "other partner manager": other.partner_manager,
        "other customer manager": other.customer_manager,
        "operator": operator,
    }
    target = people["partner manager" if whom == "itself" else whom]
    answer = await api.delete(f"/users/{target.id}", headers=people[who].headers)
    assert (answer.status_code, answer.json()["detail"] if answer.content else None) == (
        status,
        detail or (f"user {target.id} not found" if status == 404 else None),
    )
    assert await _me(api, target) == (401 if status == 204 else 200)


async def test_each_sees_the_users_of_its_own_tenant(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, operator: Person
) -> None:
    other = await factories.tenant(sessions)
    colleague = await _colleague(sessions, tenant)

    async def ids(by: Person, query: str = "") -> set[str]:
        answer = await api.get(f"/users{query}&limit=200" if query else "/users?limit=200", headers=by.headers)
        return {u["id"] for u in answer.json()["items"]}

    pm, cm = tenant.partner_manager, tenant.customer_manager
    ours = {str(p.id) for p in (pm, cm, colleague)}
    theirs = {str(p.id) for p in (other.partner_manager, other.customer_manager)}
    assert (await ids(pm), await ids(cm)) == (ours, {str(cm.id), str(colleague.id)})
    assert await ids(pm, f"?customer_id={tenant.customer_id}") == {str(cm.id), str(colleague.id)}
    assert await ids(pm, f"?partner_id={tenant.partner_id}") == {str(pm.id)}
    assert await ids(operator, f"?partner_id={other.partner_id}") == {str(other.partner_manager.id)}
    assert theirs <= await ids(operator)
    foreign = await api.get(f"/users?customer_id={other.customer_id}", headers=pm.headers)
    assert foreign.status_code == 404


@pytest.mark.parametrize("role", ["operator", "partner_manager", "customer_manager"])
async def test_a_customer_manager_is_told_they_create_no_users_whatever_the_role(
    api: httpx.AsyncClient, tenant: Tenant, role: str
) -> None:
    scope = {
        "operator": {},
        "partner_manager": {"partner_id": str(tenant.partner_id)},
        "customer_manager": {"customer_id": str(tenant.customer_id)},
    }[role]
    body = {"email": "new-colleague@example.com", "name": "New", "role": role, **scope}
    answer = await api.post("/users", json=body, headers=tenant.customer_manager.headers)
    assert (answer.status_code, answer.json()["detail"]) == (
        403,
        "customer managers cannot create users; ask your partner",
    )


@pytest.mark.parametrize("how", ["access removed", "token replaced"])
async def test_a_dead_token_gets_no_kept_answer_of_a_keyed_request(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, how: str
) -> None:
    """A kept answer may hold a secret (a new user's token): it outlives no access to the API."""
    leaver = await _colleague(sessions, tenant)
    url, body = f"/customers/{tenant.customer_id}/learners", {"email": "kept@example.com", "name": "Kept"}
    headers = keyed(leaver.headers, "add-kept")
    first = await api.post(url, json=body, headers=headers)
    if how == "access removed":
        await api.delete(f"/users/{leaver.id}", headers=tenant.partner_manager.headers)
    else:
        await api.post(f"/users/{leaver.id}/token", headers=leaver.headers)
    again = await api.post(url, json=body, headers=headers)
    assert (first.status_code, again.status_code, again.json(), again.headers.get("idempotent-replayed")) == (
        201,
        401,
        {"detail": INVALID_TOKEN},
        None,
    )
