"""What a partner reads of its own business: its licence stock statement, the partners list, and the renewals due
in the multi-tenant view."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import blocks
from rules.licences import BlockKind
from tests import factories
from tests.factories import Person, Tenant
from tests.test_api_learners import add, licences_for


async def statement(api: httpx.AsyncClient, tenant: Tenant, by: Person, **params: Any) -> httpx.Response:
    return await api.get(f"/partners/{tenant.partner_id}/licence-stock", params=params, headers=by.headers)


async def test_the_stock_statement_shows_each_purchase_and_each_assignment_with_the_stock_it_left(
    api: httpx.AsyncClient, tenant: Tenant, operator: Person
) -> None:
    credited = await api.post(
        f"/partners/{tenant.partner_id}/licence-stock",
        json={"quantity": 20, "reference": "PO-2026-77"},
        headers=operator.headers,
    )
    assert credited.status_code == 201, credited.text
    order = await licences_for(api, tenant, 3)

    response = await statement(api, tenant, tenant.partner_manager)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["licence_stock"] == 117
    newest, purchase, first = body["items"]
    assert (newest["kind"], newest["change"], newest["licence_stock"]) == ("assignment", -3, 117)
    assert (newest["order_id"], newest["customer_id"]) == (order["id"], str(tenant.customer_id))
    assert newest["customer_name"] == order["customer_name"]
    assert newest["by_id"] == str(tenant.partner_manager.id)
    assert (purchase["kind"], purchase["change"], purchase["licence_stock"]) == ("purchase", 20, 120)
    assert (purchase["reference"], purchase["by_id"]) == ("PO-2026-77", str(operator.id))
    assert (first["kind"], first["change"], first["licence_stock"]) == ("purchase", 100, 100)
    assert body["next_cursor"] is None


async def test_the_stock_statement_pages_newest_first(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    for _ in range(2):
        await factories.credit(sessions, tenant.partner_id, 5)
    seen: list[int] = []
    cursor: dict[str, str] = {}
    while True:
        page = (await statement(api, tenant, tenant.partner_manager, limit=2, **cursor)).json()
        seen += [move["licence_stock"] for move in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = {"cursor": page["next_cursor"]}
    assert seen == [110, 105, 100]


async def test_the_stock_statement_is_the_partners_alone(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, operator: Person
) -> None:
    other = await factories.tenant(sessions)
    assert (await statement(api, tenant, other.partner_manager)).status_code == 404
    customer_side = await statement(api, tenant, tenant.customer_manager)
    assert customer_side.status_code == 403
    assert "partner's managers" in customer_side.json()["detail"]
    assert (await statement(api, tenant, operator)).status_code == 200
    mine = (await statement(api, other, other.partner_manager)).json()
    assert [move["licence_stock"] for move in mine["items"]] == [100]  # nothing of the first partner's


async def test_an_operator_lists_every_partner_and_a_partner_manager_its_own(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, operator: Person
) -> None:
    other = await factories.tenant(sessions, stock=7)
    everyone = (await api.get("/partners", params={"limit": 200}, headers=operator.headers)).json()
    listed = {item["id"]: item["licence_stock"] for item in everyone["items"]}
    assert (listed[str(tenant.partner_id)], listed[str(other.partner_id)]) == (100, 7)

    own = (await api.get("/partners", headers=other.partner_manager.headers)).json()
    assert [item["id"] for item in own["items"]] == [str(other.partner_id)]
    refused = await api.get("/partners", headers=tenant.customer_manager.headers)
    assert refused.status_code == 403


async def customers(api: httpx.AsyncClient, tenant: Tenant, **params: Any) -> httpx.Response:
    return await api.get(
        f"/partners/{tenant.partner_id}/customers", params=params, headers=tenant.partner_manager.headers
    )


async def second_customer(api: httpx.AsyncClient, tenant: Tenant) -> Tenant:
    made = await api.post(
        f"/partners/{tenant.partner_id}/customers",
        json={"name": f"Fabrikam {uuid.uuid4().hex[:6]}", "account_type": "premium"},
        headers=tenant.partner_manager.headers,
    )
    assert made.status_code == 201, made.text
    return Tenant(
        partner_id=tenant.partner_id,
        customer_id=uuid.UUID(made.json()["id"]),
        partner_manager=tenant.partner_manager,
        customer_manager=tenant.customer_manager,
    )


async def test_the_multi_tenant_view_names_each_customers_next_renewal(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    later = await factories.block(sessions, tenant, quantity=4, days=200)
    sooner = await factories.block(sessions, tenant, quantity=2, days=20)
    bare = await second_customer(api, tenant)

    found = {item["id"]: item for item in (await customers(api, tenant)).json()["items"]}

    renewal = found[str(tenant.customer_id)]["next_expiry"]
    assert (renewal["quantity"], renewal["kind"]) == (2, "premium")
    assert datetime.fromisoformat(renewal["expires_at"]) == sooner
    assert sooner < later
    assert found[str(bare.customer_id)]["next_expiry"] is None


async def test_an_expired_block_is_no_renewal_due(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await factories.block(sessions, tenant, quantity=2, days=5)
    await factories.expire_customer_blocks(sessions, tenant)
    [item] = (await customers(api, tenant)).json()["items"]
    assert item["next_expiry"] is None
    assert (await customers(api, tenant, expiring_within="P30D")).json()["items"] == []


async def test_expiring_within_lists_only_the_customers_whose_licences_run_out_in_time(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await factories.block(sessions, tenant, quantity=2, days=20)
    distant = await second_customer(api, tenant)
    await factories.block(sessions, distant, quantity=3, days=200)

    due = (await customers(api, tenant, expiring_within="P30D")).json()["items"]
    assert [item["id"] for item in due] == [str(tenant.customer_id)]
    within_a_year = (await customers(api, tenant, expiring_within="P12M")).json()["items"]
    assert {item["id"] for item in within_a_year} == {str(tenant.customer_id), str(distant.customer_id)}


async def test_a_bad_expiring_within_is_422_with_what_a_duration_looks_like(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    for bad, says in (("30 days", "such as P12M"), ("P0D", "zero"), ("P99999Y", "calendar")):
        response = await customers(api, tenant, expiring_within=bad)
        assert response.status_code == 422, (bad, response.text)
        assert says in response.json()["detail"], (bad, response.text)


async def test_a_term_over_while_no_worker_ran_reads_as_expired_as_allocation_treats_it(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """The block's end passed while no worker ran, so its expiry is not recorded yet: its licences count as
    expired, not as available ones a new learner cannot get; the block shows its end; it is no renewal to come."""
    ended_at = datetime.now(UTC) - timedelta(minutes=1)
    async with sessions.begin() as session:
        await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=3,
            starts_at=ended_at - timedelta(days=365),
            expires_at=ended_at,
        )
    headers = tenant.customer_manager.headers
    seen = (await api.get(f"/customers/{tenant.customer_id}/licences", headers=headers)).json()
    learner = await add(api, tenant)
    [item] = (await customers(api, tenant)).json()["items"]

    assert (seen["total"], seen["available"], seen["expired"], learner["licence_status"]) == (3, 0, 3, "unlicensed")
    [block] = seen["blocks"]
    assert (block["status"], datetime.fromisoformat(block["expired_at"])) == ("expired", ended_at)
    assert (item["licences"]["expired"], item["next_expiry"]) == (3, None)
    assert (await customers(api, tenant, expiring_within="P30D")).json()["items"] == []
