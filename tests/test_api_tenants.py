"""Who may do what: tokens, roles, and one tenant never seeing another's objects."""

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db.directory import MAX_STOCK
from db.models import Partner
from licensing.config import Settings
from tests import factories
from tests.factories import Person, Tenant
from tests.test_api_learners import add
from tests.test_api_orders import request_licences


@pytest.fixture
async def other(sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    return await factories.tenant(sessions)


async def test_no_token_is_401(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.get(f"/partners/{tenant.partner_id}")
    assert (response.status_code, response.headers["www-authenticate"]) == (401, "Bearer")


async def test_an_unknown_token_is_401(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.get(f"/partners/{tenant.partner_id}", headers={"Authorization": "Bearer lic_nope"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/partners/{partner}", None),
        ("GET", "/partners/{partner}/customers", None),
        ("GET", "/partners/{partner}/licence-orders", None),
        ("POST", "/partners/{partner}/customers", {"name": "Sneaky", "account_type": "premium"}),
        ("GET", "/customers/{customer}", None),
        ("GET", "/customers/{customer}/licences", None),
        ("GET", "/customers/{customer}/licence-orders", None),
        ("POST", "/customers/{customer}/licence-orders", {"quantity": 1}),
        ("GET", "/licence-orders/{order}", None),
        ("POST", "/licence-orders/{order}/assign", None),
        ("POST", "/licence-orders/{order}/reject", {"reason": "mine now"}),
        ("POST", "/licence-orders/{order}/cancel", None),
        ("GET", "/audit-events?customer_id={customer}", None),
        ("POST", "/customers/{customer}/learners", {"email": "new@example.com", "name": "New"}),
        ("GET", "/customers/{customer}/learners", None),
        ("GET", "/customers/{customer}/learners/{learner}", None),
        ("DELETE", "/customers/{customer}/learners/{learner}", None),
        ("POST", "/customers/{customer}/licence-allocations", {"all": "unlicensed"}),
        (
            "POST",
            "/customers/{customer}/learners/{learner}/training-records",
            {"course": "C", "completed_at": "2026-01-01T00:00:00Z", "score": 1},
        ),
        ("GET", "/customers/{customer}/reports/training.csv", None),
        ("GET", "/customers/{customer}/learners/{learner}/reports/training.csv", None),
        ("POST", "/customers/{customer}/upgrade", None),
    ],
)
@pytest.mark.parametrize("intruder", ["partner_manager", "customer_manager"])
async def test_another_tenant_gets_404_and_changes_nothing(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant, method: str, path: str, body: Any, intruder: str
) -> None:
    order = await request_licences(api, tenant, 2)
    learner = await add(api, tenant)
    url = path.format(partner=tenant.partner_id, customer=tenant.customer_id, order=order["id"], learner=learner["id"])
    caller: Person = getattr(other, intruder)
    response = await api.request(method, url, json=body, headers=caller.headers)
    owner = tenant.partner_manager.headers
    after = await api.get(f"/licence-orders/{order['id']}", headers=owner)
    partner = await api.get(f"/partners/{tenant.partner_id}", headers=owner)
    learners = await api.get(f"/customers/{tenant.customer_id}/learners", headers=owner)
    assert (response.status_code, after.json()["status"], partner.json()["licence_stock"]) == (404, "requested", 100)
    assert [(le["id"], le["licence_status"]) for le in learners.json()["items"]] == [(learner["id"], "unlicensed")]


async def test_an_unknown_id_is_404_like_another_tenants(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.get(f"/licence-orders/{uuid.uuid4()}", headers=tenant.partner_manager.headers)
    assert response.status_code == 404


async def test_a_malformed_id_is_422(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.get("/licence-orders/42", headers=tenant.partner_manager.headers)
    assert response.status_code == 422


async def test_lists_hold_only_the_callers_tenant(api: httpx.AsyncClient, tenant: Tenant, other: Tenant) -> None:
    await request_licences(api, tenant, 1)
    await request_licences(api, other, 1)
    orders = await api.get(f"/partners/{other.partner_id}/licence-orders", headers=other.partner_manager.headers)
    customers = await api.get(f"/partners/{other.partner_id}/customers", headers=other.partner_manager.headers)
    trail = (await api.get("/audit-events", headers=other.partner_manager.headers)).json()["items"]
    assert {o["customer_id"] for o in orders.json()["items"]} == {str(other.customer_id)}
    assert [c["id"] for c in customers.json()["items"]] == [str(other.customer_id)]
    assert {e["partner_id"] for e in trail} == {str(other.partner_id)}


async def test_notifications_are_the_callers_own(api: httpx.AsyncClient, tenant: Tenant, other: Tenant) -> None:
    await request_licences(api, tenant, 1)
    response = await api.get("/notifications", headers=other.partner_manager.headers)
    assert response.json()["items"] == []


async def test_the_operator_creates_a_partner_and_credits_its_stock(api: httpx.AsyncClient, operator: Person) -> None:
    partner = (await api.post("/partners", json={"name": f"P {uuid.uuid4()}"}, headers=operator.headers)).json()
    credit = await api.post(
        f"/partners/{partner['id']}/licence-stock",
        json={"quantity": 250, "reference": "PO-7781"},
        headers=operator.headers,
    )
    assert (partner["licence_stock"], credit.status_code, credit.json()) == (
        0,
        201,
        {"partner_id": partner["id"], "licence_stock": 250},
    )


@pytest.mark.parametrize("name", ["Acme\nReply-To: thief@example.com", "Acme\r\nCorp", "Acme\tCorp", "Acme\u2028Corp"])
async def test_a_name_on_more_than_one_line_is_422_and_nothing_is_created(
    api: httpx.AsyncClient, operator: Person, tenant: Tenant, name: str
) -> None:
    pm = tenant.partner_manager.headers
    customers = f"/partners/{tenant.partner_id}/customers"

    async def listed() -> list[Any]:
        partners = await api.get("/partners", headers=operator.headers)
        return [partners.json(), (await api.get(customers, headers=pm)).json()]

    before = await listed()
    partner = await api.post("/partners", json={"name": name}, headers=operator.headers)
    customer = await api.post(customers, json={"name": name, "account_type": "premium"}, headers=pm)
    after = await listed()
    assert (partner.status_code, customer.status_code, after == before) == (422, 422, True)
    assert "must be one line" in partner.text and "must be one line" in customer.text


async def test_an_operator_asking_for_the_customers_of_no_partner_gets_404(
    api: httpx.AsyncClient, operator: Person
) -> None:
    nobody = uuid.uuid4()
    for path in (f"/partners/{nobody}/customers", f"/partners/{nobody}/licence-orders", f"/partners/{nobody}"):
        response = await api.get(path, headers=operator.headers)
        assert (path, response.status_code, response.json()["detail"]) == (path, 404, f"partner {nobody} not found")


async def test_a_purchase_reference_is_credited_once(api: httpx.AsyncClient, operator: Person, tenant: Tenant) -> None:
    url = f"/partners/{tenant.partner_id}/licence-stock"
    await api.post(url, json={"quantity": 10, "reference": "PO-1"}, headers=operator.headers)
    again = await api.post(url, json={"quantity": 10, "reference": "PO-1"}, headers=operator.headers)
    partner = await api.get(f"/partners/{tenant.partner_id}", headers=operator.headers)
    assert (again.status_code, partner.json()["licence_stock"]) == (409, 110)


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": 0, "reference": "x"},
        {"quantity": -1, "reference": "x"},
        {"quantity": 10**9, "reference": "x"},
        {"quantity": 5},
        {"quantity": 5, "reference": ""},
        {"quantity": "5", "reference": "x"},
    ],
)
async def test_bad_stock_credits_are_422(
    api: httpx.AsyncClient, operator: Person, tenant: Tenant, body: dict[str, Any]
) -> None:
    response = await api.post(f"/partners/{tenant.partner_id}/licence-stock", json=body, headers=operator.headers)
    assert response.status_code == 422


async def test_a_credit_past_the_most_a_stock_can_hold_is_409_and_records_nothing(
    api: httpx.AsyncClient, operator: Person, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Partner).where(Partner.id == tenant.partner_id).values(licence_stock=MAX_STOCK - 5)
        )
    url = f"/partners/{tenant.partner_id}/licence-stock"
    refused = await api.post(url, json={"quantity": 10, "reference": "PO-big"}, headers=operator.headers)
    assert (refused.status_code, refused.json()["detail"]) == (
        409,
        "the stock would be 2,147,483,652 licences, more than the 2,147,483,647 a partner can hold "
        "(it holds 2,147,483,642); credit at most 5",
    )
    fits = await api.post(url, json={"quantity": 5, "reference": "PO-big"}, headers=operator.headers)
    assert (fits.status_code, fits.json()["licence_stock"]) == (201, MAX_STOCK)  # the reference was not used up


async def test_a_partner_manager_cannot_credit_its_own_stock(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.post(
        f"/partners/{tenant.partner_id}/licence-stock",
        json={"quantity": 5, "reference": "free"},
        headers=tenant.partner_manager.headers,
    )
    assert response.status_code == 403


async def test_a_partner_manager_onboards_a_customer_and_its_manager(api: httpx.AsyncClient, tenant: Tenant) -> None:
    pm = tenant.partner_manager.headers
    customer = await api.post(
        f"/partners/{tenant.partner_id}/customers", json={"name": "Fabrikam", "account_type": "premium"}, headers=pm
    )
    manager = await api.post(
        "/users",
        json={
            "email": f"m{uuid.uuid4().hex[:6]}@fabrikam.example",
            "name": "Mo",
            "role": "customer_manager",
            "customer_id": customer.json()["id"],
        },
        headers=pm,
    )
    me = await api.get("/users/me", headers={"Authorization": f"Bearer {manager.json()['token']}"})
    assert (customer.status_code, manager.status_code, me.json()["customer_id"]) == (201, 201, customer.json()["id"])


async def test_a_partner_manager_cannot_make_an_operator(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.post(
        "/users",
        json={"email": "boss@example.com", "name": "Boss", "role": "operator"},
        headers=tenant.partner_manager.headers,
    )
    assert response.status_code == 403


async def test_a_partner_manager_cannot_make_managers_for_another_partners_customer(
    api: httpx.AsyncClient, tenant: Tenant, other: Tenant
) -> None:
    response = await api.post(
        "/users",
        json={
            "email": "spy@example.com",
            "name": "Spy",
            "role": "customer_manager",
            "customer_id": str(other.customer_id),
        },
        headers=tenant.partner_manager.headers,
    )
    assert response.status_code == 404


async def test_a_second_user_with_the_same_email_is_409(api: httpx.AsyncClient, operator: Person) -> None:
    body = {"email": "twice@example.com", "name": "Twice", "role": "operator"}
    await api.post("/users", json=body, headers=operator.headers)
    again = await api.post("/users", json={**body, "email": "TWICE@example.com"}, headers=operator.headers)
    assert again.status_code == 409


async def test_a_role_with_the_wrong_scope_is_422(api: httpx.AsyncClient, operator: Person, tenant: Tenant) -> None:
    response = await api.post(
        "/users",
        json={"email": "x@example.com", "name": "X", "role": "partner_manager", "customer_id": str(tenant.customer_id)},
        headers=operator.headers,
    )
    assert response.status_code == 422


async def test_the_multi_tenant_view_counts_each_customers_licences(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 7)
    await api.post(f"/licence-orders/{order['id']}/assign", headers=tenant.partner_manager.headers)
    view = (await api.get(f"/partners/{tenant.partner_id}/customers", headers=tenant.partner_manager.headers)).json()
    assert view["items"][0]["licences"] == {"total": 7, "available": 7, "allocated": 0, "expired": 0}


async def test_a_partner_sets_a_customers_trial_term_within_a_licence_term(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    path, pm = f"/partners/{tenant.partner_id}/customers", tenant.partner_manager.headers

    def customer(**fields: object) -> dict[str, object]:
        return {"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial", **fields}

    made = await api.post(path, json=customer(trial_term="P30D"), headers=pm)
    too_long = await api.post(path, json=customer(trial_term="P2Y"), headers=pm)
    beyond = [await api.post(path, json=customer(trial_term=t), headers=pm) for t in ("P99999Y", "P999999999999D")]
    not_a_term = await api.post(path, json=customer(trial_term="30 days"), headers=pm)
    premium = await api.post(path, json={**customer(trial_term="P30D"), "account_type": "premium"}, headers=pm)
    assert (made.status_code, too_long.status_code, not_a_term.status_code, premium.status_code) == (
        201,
        422,
        422,
        422,
    )
    assert "longer than a licence term" in too_long.text and "ISO 8601" in not_a_term.text
    assert [answer.status_code for answer in beyond] == [422, 422]
    [block] = (await api.get(f"/customers/{made.json()['id']}/licences", headers=pm)).json()["blocks"]
    lasts = datetime.fromisoformat(block["expires_at"]) - datetime.fromisoformat(made.json()["created_at"])
    trail = (await api.get(f"/audit-events?customer_id={made.json()['id']}", headers=pm)).json()["items"]
    assert (lasts, [e["details"]["kind"] for e in trail if e["action"] == "licence_block.created"]) == (
        timedelta(days=30),
        ["trial"],
    )


async def test_a_default_trial_term_longer_than_a_licence_term_is_cut_to_it(
    app: FastAPI,
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    """A demo's short licence term beside the 14-day default trial: the trial lasts the licence term, not longer."""
    short = settings.model_copy(update={"licence_term": "PT2M"})
    assert short.trial_term == "P14D"
    demo = create_app(short, sessions=sessions, temporal=dev_server.client)
    pm = tenant.partner_manager.headers
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=demo), base_url="http://demo/api/v1") as api:
        made = await api.post(
            f"/partners/{tenant.partner_id}/customers", json={"name": "Demo", "account_type": "trial"}, headers=pm
        )
        [block] = (await api.get(f"/customers/{made.json()['id']}/licences", headers=pm)).json()["blocks"]
    lasts = datetime.fromisoformat(block["expires_at"]) - datetime.fromisoformat(block["starts_at"])
    assert (made.status_code, lasts) == (201, timedelta(minutes=2))
    trial_customer = dataclasses.replace(tenant, customer_id=uuid.UUID(made.json()["id"]))
    await factories.expire_customer_blocks(sessions, trial_customer)  # its term ends now, not in two minutes
