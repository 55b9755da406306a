"""Seed step 3 and reallocation through the API: learners take licences, expired ones wait for a manager."""

import asyncio
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Licence
from tests import factories
from tests.factories import Person, Tenant
from tests.test_api_orders import request_licences


async def licences_for(api: httpx.AsyncClient, tenant: Tenant, quantity: int) -> dict[str, Any]:
    """Seed steps 1-2: the customer asks, the partner assigns. Returns the assigned order."""
    order = await request_licences(api, tenant, quantity)
    assigned = await api.post(f"/licence-orders/{order['id']}/assign", headers=tenant.partner_manager.headers)
    assert assigned.status_code == 200, assigned.text
    return dict(assigned.json())


async def add(api: httpx.AsyncClient, tenant: Tenant, email: str | None = None, by: Person | None = None) -> Any:
    response = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": email or f"l-{uuid.uuid4().hex[:8]}@example.com", "name": "Lee Learner"},
        headers=(by or tenant.customer_manager).headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def counts(api: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    return dict(
        (await api.get(f"/customers/{tenant.customer_id}/licences", headers=tenant.customer_manager.headers)).json()
    )


async def test_a_new_learner_takes_a_licence_automatically(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await licences_for(api, tenant, 2)
    learner = await add(api, tenant, by=tenant.partner_manager)  # Manage Mode > Users > Add Users
    seen = await counts(api, tenant)
    assert (learner["licence_status"], learner["licence_expires_at"], learner["note"]) == (
        "active",
        order["block"]["expires_at"],
        None,
    )
    assert (seen["total"], seen["available"], seen["allocated"]) == (2, 1, 1)


async def test_with_no_licence_free_the_learner_is_added_unlicensed_and_told_so(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    learner = await add(api, tenant)
    assert (learner["licence_status"], learner["licence_expires_at"]) == ("unlicensed", None)
    assert "no licence was free" in learner["note"]
    assert '{"all": "unlicensed"}' in learner["note"]  # where an unlicensed learner is allocated: not Expired Licences


async def test_the_licence_that_expires_first_is_taken_first(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await licences_for(api, tenant, 1)  # 12 months
    sooner = await factories.block(sessions, tenant, quantity=1, days=30)
    learner = await add(api, tenant)
    assert datetime.fromisoformat(learner["licence_expires_at"]) == sooner


async def test_a_second_learner_with_the_same_email_is_409(api: httpx.AsyncClient, tenant: Tenant) -> None:
    await add(api, tenant, email="sam@example.com")
    again = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": "SAM@example.com", "name": "Sam"},
        headers=tenant.customer_manager.headers,
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "name": "X"},
        {"email": "x@example.com"},
        {"name": "X"},
        {"email": "x@example.com", "name": ""},
        {"email": "x@example.com", "name": "X", "licence_status": "active"},
    ],
)
async def test_bad_learners_are_422(api: httpx.AsyncClient, tenant: Tenant, body: dict[str, str]) -> None:
    response = await api.post(
        f"/customers/{tenant.customer_id}/learners", json=body, headers=tenant.customer_manager.headers
    )
    assert response.status_code == 422


async def test_expired_licences_tab_lists_only_expired_learners(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await licences_for(api, tenant, 1)
    expiring = await add(api, tenant)
    await add(api, tenant)  # unlicensed
    await factories.expire_customer_blocks(sessions, tenant)
    tab = await api.get(
        f"/customers/{tenant.customer_id}/learners?licence_status=expired", headers=tenant.customer_manager.headers
    )
    assert [learner["id"] for learner in tab.json()["items"]] == [expiring["id"]]


async def test_expired_learners_are_never_renewed_automatically(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await licences_for(api, tenant, 1)
    learner = await add(api, tenant)
    await factories.expire_customer_blocks(sessions, tenant)
    await licences_for(api, tenant, 3)
    after = await api.get(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}", headers=tenant.customer_manager.headers
    )
    assert (after.json()["licence_status"], (await counts(api, tenant))["available"]) == ("expired", 3)


async def test_allocating_to_all_expired_learners(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await licences_for(api, tenant, 2)
    first, second = await add(api, tenant), await add(api, tenant)
    await factories.expire_customer_blocks(sessions, tenant)
    await licences_for(api, tenant, 2)
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-allocations",
        json={"all": "expired"},
        headers=tenant.partner_manager.headers,
    )
    body = response.json()
    assert (response.status_code, body["allocated"], {learner["id"] for learner in body["learners"]}) == (
        200,
        2,
        {first["id"], second["id"]},
    )
    assert {learner["licence_status"] for learner in body["learners"]} == {"active"}


async def test_allocation_is_all_or_nothing(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    chosen = [(await add(api, tenant))["id"] for _ in range(3)]
    await licences_for(api, tenant, 2)
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-allocations",
        json={"learner_ids": chosen},
        headers=tenant.customer_manager.headers,
    )
    seen = await counts(api, tenant)
    assert (response.status_code, response.json()["detail"].split(":")[0], seen["allocated"]) == (
        409,
        "asked 3, available 2",
        0,
    )


async def test_allocating_to_chosen_unlicensed_learners(api: httpx.AsyncClient, tenant: Tenant) -> None:
    chosen = [(await add(api, tenant))["id"] for _ in range(2)]
    await licences_for(api, tenant, 5)
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-allocations",
        json={"learner_ids": chosen[:1]},
        headers=tenant.customer_manager.headers,
    )
    assert (response.json()["allocated"], (await counts(api, tenant))["allocated"]) == (1, 1)


async def test_allocating_to_an_active_learner_is_409(api: httpx.AsyncClient, tenant: Tenant) -> None:
    await licences_for(api, tenant, 2)
    active = await add(api, tenant)
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-allocations",
        json={"learner_ids": [active["id"]]},
        headers=tenant.customer_manager.headers,
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body", [{}, {"all": "active"}, {"learner_ids": []}, {"learner_ids": ["x"]}, {"all": "expired", "learner_ids": []}]
)
async def test_bad_allocations_are_422(api: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> None:
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-allocations", json=body, headers=tenant.customer_manager.headers
    )
    assert response.status_code == 422


async def test_another_customers_learner_cannot_be_allocated(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    other = await factories.tenant(sessions)
    theirs = await add(api, other)
    await licences_for(api, tenant, 1)
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-allocations",
        json={"learner_ids": [theirs["id"]]},
        headers=tenant.customer_manager.headers,
    )
    assert response.status_code == 404


async def test_deleting_a_learner_frees_its_licence_with_the_term_it_had_left(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    order = await licences_for(api, tenant, 1)
    leaver = await add(api, tenant)
    deleted = await api.delete(
        f"/customers/{tenant.customer_id}/learners/{leaver['id']}", headers=tenant.customer_manager.headers
    )
    joiner = await add(api, tenant)
    assert (deleted.status_code, joiner["licence_status"], joiner["licence_expires_at"]) == (
        204,
        "active",
        order["block"]["expires_at"],
    )


async def test_deleting_a_learner_deletes_its_training_records(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learner = await add(api, tenant)
    url = f"/customers/{tenant.customer_id}/learners/{learner['id']}"
    await api.post(
        f"{url}/training-records",
        json={"course": "Fire safety", "completed_at": "2026-10-01T10:00:00Z", "score": 90},
        headers=tenant.customer_manager.headers,
    )
    await api.delete(url, headers=tenant.customer_manager.headers)
    report = await api.get(
        f"/customers/{tenant.customer_id}/reports/training.csv", headers=tenant.customer_manager.headers
    )
    assert "Fire safety" not in report.text


async def test_deleting_is_audited_in_manage_mode(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learner = await add(api, tenant)
    await api.delete(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}", headers=tenant.partner_manager.headers
    )
    trail = (
        await api.get(f"/audit-events?customer_id={tenant.customer_id}", headers=tenant.customer_manager.headers)
    ).json()
    [event] = [e for e in trail["items"] if e["action"] == "learner.deleted"]
    assert (event["subject_id"], event["manage_mode"]) == (learner["id"], True)


async def test_a_training_record_is_audited_in_manage_mode(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learner = await add(api, tenant)
    recorded = await api.post(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}/training-records",
        json={"course": "Fire safety", "completed_at": "2026-10-01T10:00:00Z", "score": 90},
        headers=tenant.partner_manager.headers,
    )
    trail = (
        await api.get(f"/audit-events?customer_id={tenant.customer_id}", headers=tenant.customer_manager.headers)
    ).json()
    [event] = [e for e in trail["items"] if e["action"] == "learner.training_recorded"]
    assert (event["subject_id"], event["manage_mode"], event["actor_id"], event["details"]) == (
        learner["id"],
        True,
        str(tenant.partner_manager.id),
        {"training_record_id": recorded.json()["id"], "course": "Fire safety", "score": 90},
    )


async def test_the_training_report_is_safe_to_open_in_a_spreadsheet(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learner = await add(api, tenant)
    await api.post(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}/training-records",
        json={"course": '=HYPERLINK("http://evil")', "completed_at": "2026-10-01T10:00:00Z", "score": 75},
        headers=tenant.customer_manager.headers,
    )
    report = await api.get(
        f"/customers/{tenant.customer_id}/reports/training.csv", headers=tenant.customer_manager.headers
    )
    lines = report.text.splitlines()
    assert (report.headers["content-type"].startswith("text/csv"), lines[0].split(",")[:2], len(lines)) == (
        True,
        ["learner_email", "learner_name"],
        2,
    )
    assert "'=HYPERLINK" in lines[1]


async def test_a_learners_own_report(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learner, other = await add(api, tenant), await add(api, tenant)
    for who in (learner, other):
        await api.post(
            f"/customers/{tenant.customer_id}/learners/{who['id']}/training-records",
            json={"course": f"Course of {who['email']}", "completed_at": "2026-10-01T10:00:00Z", "score": 75},
            headers=tenant.customer_manager.headers,
        )
    report = await api.get(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}/reports/training.csv",
        headers=tenant.customer_manager.headers,
    )
    assert len(report.text.splitlines()) == 2 and learner["email"] in report.text and other["email"] not in report.text


@pytest.mark.parametrize(
    "body",
    [
        {"course": "A", "completed_at": "2026-10-01T10:00:00Z", "score": 101},
        {"course": "A", "completed_at": "2026-10-01T10:00:00Z", "score": 50.5},
        {"course": "", "completed_at": "2026-10-01T10:00:00Z", "score": 50},
        {"course": "A", "completed_at": "yesterday", "score": 50},
    ],
)
async def test_bad_training_records_are_422(api: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any]) -> None:
    learner = await add(api, tenant)
    response = await api.post(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}/training-records",
        json=body,
        headers=tenant.customer_manager.headers,
    )
    assert response.status_code == 422


async def test_fifty_learners_added_at_once_with_five_licences_free(api: httpx.AsyncClient, tenant: Tenant) -> None:
    await licences_for(api, tenant, 5)
    added = await asyncio.gather(*(add(api, tenant) for _ in range(50)))
    seen = await counts(api, tenant)
    statuses = sorted(learner["licence_status"] for learner in added)
    assert (statuses.count("active"), statuses.count("unlicensed"), seen["allocated"], seen["available"]) == (
        5,
        45,
        5,
        0,
    )


async def test_addresses_at_test_domains_are_taken_and_local_ones_refused(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    """`.test` is reserved for test and staging installs (RFC 6761): their people have such addresses."""
    path, headers = f"/customers/{tenant.customer_id}/learners", tenant.customer_manager.headers
    taken = await api.post(path, json={"email": "Tess@Staging.Test", "name": "Tess"}, headers=headers)
    refused = await api.post(path, json={"email": "lo@corp.local", "name": "Lo"}, headers=headers)
    assert (taken.status_code, taken.json()["email"]) == (201, "tess@staging.test")
    assert (refused.status_code, "special-use or reserved" in refused.text) == (422, True)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("2026-10-01", "2026-10-01T00:00:00Z"),
        ("2026-10-01T10:30:00", "2026-10-01T10:30:00Z"),
        ("2026-10-01T12:30:00+02:00", "2026-10-01T10:30:00Z"),
    ],
)
async def test_a_completion_date_alone_or_without_an_offset_is_taken_as_utc(
    api: httpx.AsyncClient, tenant: Tenant, sent: str, kept: str
) -> None:
    learner = await add(api, tenant)
    recorded = await api.post(
        f"/customers/{tenant.customer_id}/learners/{learner['id']}/training-records",
        json={"course": "First aid", "completed_at": sent, "score": 75},
        headers=tenant.customer_manager.headers,
    )
    assert recorded.status_code == 201, recorded.text
    assert datetime.fromisoformat(recorded.json()["completed_at"]) == datetime.fromisoformat(kept)


async def test_the_licence_a_new_learner_takes_is_named_in_its_creation_event(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    expires_at = await factories.block(sessions, tenant, quantity=1, days=30)
    licensed, unlicensed = await add(api, tenant), await add(api, tenant)
    trail = (
        await api.get(f"/audit-events?customer_id={tenant.customer_id}", headers=tenant.customer_manager.headers)
    ).json()
    created = {e["subject_id"]: e["details"] for e in trail["items"] if e["action"] == "learner.created"}
    async with sessions() as session:
        held = await session.scalar(select(Licence.id).where(Licence.learner_id == uuid.UUID(licensed["id"])))
    assert created[licensed["id"]] == {
        "source": "manual",
        "licence_status": "active",
        "licence_id": str(held),
        "expires_at": expires_at.isoformat(),
    }
    assert created[unlicensed["id"]] == {"source": "manual", "licence_status": "unlicensed"}
