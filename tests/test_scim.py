"""AD Sync: the request sequences Microsoft documents for Entra ID provisioning, replayed against /scim/v2."""

import asyncio
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AuditEvent
from tests import factories
from tests.conftest import scim_token
from tests.factories import Tenant
from tests.test_api_learners import counts, licences_for
from tests.test_learner_import import csv_of, finished, upload

SCIM_JSON = {"Content-Type": "application/scim+json"}
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def entra_user(
    user_name: str = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@contoso.example",
    email: str = "Test_User_fd0ea19b@testuser.com",
) -> dict[str, Any]:
    """The body Entra ID POSTs (from Microsoft's SCIM provisioning documentation)."""
    return {
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": user_name,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": [],
    }


async def test_an_unknown_user_is_an_empty_list(scim: httpx.AsyncClient) -> None:
    response = await scim.get('/Users?filter=userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"')
    assert (
        response.status_code,
        response.headers["content-type"],
        response.json()["totalResults"],
        response.json()["Resources"],
    ) == (200, "application/scim+json", 0, [])


async def test_entra_creates_a_user_who_takes_a_licence(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    await licences_for(api, tenant, 1)
    created = await scim.post("/Users", json=entra_user())
    body = created.json()
    learner = (
        await api.get(f"/customers/{tenant.customer_id}/learners/{body['id']}", headers=tenant.customer_manager.headers)
    ).json()
    assert (created.status_code, body["userName"], body["active"], body["emails"][0]["value"]) == (
        201,
        entra_user()["userName"],
        True,
        "test_user_fd0ea19b@testuser.com",
    )
    assert (learner["source"], learner["licence_status"]) == ("scim", "active")


async def test_entra_finds_the_user_by_username_externalid_and_work_email(scim: httpx.AsyncClient) -> None:
    created = (await scim.post("/Users", json=entra_user())).json()
    found = [
        (await scim.get("/Users", params={"filter": query})).json()["Resources"]
        for query in (
            f'userName eq "{entra_user()["userName"]}"',
            'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"',
            'emails[type eq "work"].value eq "Test_User_fd0ea19b@testuser.com"',
            f'userName eq "{entra_user()["userName"]}" and externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"',
        )
    ]
    got = await scim.get(f"/Users/{created['id']}")
    assert [[r["id"] for r in resources] for resources in found] == [[created["id"]]] * 4
    assert got.json()["id"] == created["id"]


async def test_a_second_user_with_the_same_username_is_409_uniqueness(scim: httpx.AsyncClient) -> None:
    await scim.post("/Users", json=entra_user())
    again = await scim.post("/Users", json=entra_user())
    assert (again.status_code, again.json()["scimType"], again.json()["schemas"]) == (
        409,
        "uniqueness",
        ["urn:ietf:params:scim:api:messages:2.0:Error"],
    )


async def test_entra_patches_attributes_in_any_case(scim: httpx.AsyncClient) -> None:
    created = (await scim.post("/Users", json=entra_user())).json()
    patched = await scim.patch(
        f"/Users/{created['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": "displayName", "value": "Updated Name"},
                {"op": "replace", "value": {"externalId": "new-external-id"}},
            ],
        },
    )
    body = patched.json()
    assert (
        patched.status_code,
        body["emails"][0]["value"],
        body["name"]["familyName"],
        body["displayName"],
        body["externalId"],
    ) == (200, "updatedemail@microsoft.com", "updatedFamilyName", "Updated Name", "new-external-id")


@pytest.mark.parametrize("inactive", ["False", False], ids=["string", "boolean"])
async def test_deactivating_frees_the_licence_and_keeps_the_learner(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant, inactive: object
) -> None:
    await licences_for(api, tenant, 1)
    created = (await scim.post("/Users", json=entra_user())).json()
    patched = await scim.patch(
        f"/Users/{created['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": inactive}]},
    )
    still = await scim.get(f"/Users/{created['id']}")
    seen = await counts(api, tenant)
    assert (patched.json()["active"], still.status_code, still.json()["active"], seen["available"]) == (
        False,
        200,
        False,
        1,
    )
    learner = await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    [shown] = [item for item in learner.json()["items"] if item["id"] == created["id"]]
    assert (shown["licence_status"], shown["licence_expires_at"]) == ("unlicensed", None)  # no licence, no end


async def test_reactivating_brings_the_learner_back_unlicensed(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    await licences_for(api, tenant, 1)
    created = (await scim.post("/Users", json=entra_user())).json()
    for active in ("False", "True"):
        await scim.patch(
            f"/Users/{created['id']}",
            json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": active}]},
        )
    learner = (
        await api.get(
            f"/customers/{tenant.customer_id}/learners/{created['id']}", headers=tenant.customer_manager.headers
        )
    ).json()
    assert (learner["active"], learner["licence_status"], (await counts(api, tenant))["available"]) == (
        True,
        "unlicensed",
        1,
    )


async def test_an_expired_learner_switched_off_and_on_in_the_directory_is_still_expired(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await licences_for(api, tenant, 1)
    created = (await scim.post("/Users", json=entra_user())).json()
    await factories.expire_customer_blocks(sessions, tenant)
    path = f"/customers/{tenant.customer_id}/learners/{created['id']}"
    ended = (await api.get(path, headers=tenant.customer_manager.headers)).json()["licence_expires_at"]
    for active in ("False", "True"):
        await scim.patch(
            f"/Users/{created['id']}",
            json={"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": active}]},
        )
    learner = (await api.get(path, headers=tenant.customer_manager.headers)).json()
    tab = await api.get(
        f"/customers/{tenant.customer_id}/learners",
        params={"licence_status": "expired"},
        headers=tenant.customer_manager.headers,
    )
    assert (learner["active"], learner["licence_status"], learner["licence_expires_at"]) == (True, "expired", ended)
    assert ended is not None
    assert [item["id"] for item in tab.json()["items"]] == [created["id"]]


async def test_a_deactivated_learner_keeps_its_training_history(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = (await scim.post("/Users", json=entra_user())).json()
    await api.post(
        f"/customers/{tenant.customer_id}/learners/{created['id']}/training-records",
        json={"course": "GDPR basics", "completed_at": "2026-05-01T09:00:00Z", "score": 88},
        headers=tenant.customer_manager.headers,
    )
    await scim.patch(
        f"/Users/{created['id']}",
        json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    report = await api.get(
        f"/customers/{tenant.customer_id}/reports/training.csv", headers=tenant.customer_manager.headers
    )
    assert "GDPR basics" in report.text


async def test_put_replaces_the_user(scim: httpx.AsyncClient) -> None:
    created = (await scim.post("/Users", json=entra_user())).json()
    replaced = await scim.put(
        f"/Users/{created['id']}",
        json={**entra_user(), "displayName": "Replaced", "name": {"givenName": "Re", "familyName": "Placed"}},
    )
    assert (replaced.status_code, replaced.json()["displayName"], replaced.json()["name"]["givenName"]) == (
        200,
        "Replaced",
        "Re",
    )


async def test_delete_removes_the_user_and_frees_its_licence(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    await licences_for(api, tenant, 1)
    created = (await scim.post("/Users", json=entra_user())).json()
    deleted = await scim.delete(f"/Users/{created['id']}")
    gone = await scim.get(f"/Users/{created['id']}")
    assert (deleted.status_code, gone.status_code, (await counts(api, tenant))["available"]) == (204, 404, 1)


async def test_paging_with_start_index_and_count(scim: httpx.AsyncClient) -> None:
    for n in range(5):
        await scim.post("/Users", json=entra_user(f"user{n}@contoso.example", f"mail{n}@contoso.example"))
    page = (await scim.get("/Users?startIndex=2&count=2")).json()
    assert (
        page["totalResults"],
        page["startIndex"],
        page["itemsPerPage"],
        [r["userName"] for r in page["Resources"]],
    ) == (5, 2, 2, ["user1@contoso.example", "user2@contoso.example"])


async def test_an_unsupported_filter_is_400_invalid_filter(scim: httpx.AsyncClient) -> None:
    response = await scim.get('/Users?filter=title co "boss"')
    assert (response.status_code, response.json()["scimType"]) == (400, "invalidFilter")


async def test_discovery_endpoints_answer(scim: httpx.AsyncClient) -> None:
    answers = [
        await scim.get(path)
        for path in ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas", "/ResourceTypes/User", f"/Schemas/{USER}")
    ]
    config = answers[0].json()
    assert [a.status_code for a in answers] == [200] * 5
    assert (config["patch"]["supported"], config["filter"]["supported"], config["bulk"]["supported"]) == (
        True,
        True,
        False,
    )


async def test_one_customers_token_never_sees_another_customers_users(
    scim: httpx.AsyncClient, app: FastAPI, api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = (await scim.post("/Users", json=entra_user())).json()
    other = await factories.tenant(sessions)
    headers = {"Authorization": f"Bearer {await scim_token(api, other)}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver/scim/v2", headers=headers
    ) as theirs:
        answers = [
            (await theirs.get(f"/Users/{created['id']}")).status_code,
            (
                await theirs.patch(
                    f"/Users/{created['id']}",
                    json={"Operations": [{"op": "replace", "path": "active", "value": False}]},
                )
            ).status_code,
            (await theirs.delete(f"/Users/{created['id']}")).status_code,
            (await theirs.get("/Users")).json()["totalResults"],
        ]
    assert answers == [404, 404, 404, 0]
    assert (await scim.get(f"/Users/{created['id']}")).json()["active"] is True


async def test_a_revoked_token_is_refused(scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant) -> None:
    tokens = (
        await api.get(f"/customers/{tenant.customer_id}/scim-tokens", headers=tenant.customer_manager.headers)
    ).json()["items"]
    await api.delete(
        f"/customers/{tenant.customer_id}/scim-tokens/{tokens[0]['id']}", headers=tenant.customer_manager.headers
    )
    response = await scim.get("/Users")
    assert (response.status_code, response.json()["status"]) == (401, "401")


async def test_no_token_is_a_scim_401(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver/scim/v2") as c:
        response = await c.get("/Users")
    assert (response.status_code, response.json()["schemas"]) == (401, ["urn:ietf:params:scim:api:messages:2.0:Error"])


@pytest.mark.parametrize(
    "body",
    [
        {"userName": ""},
        {"active": True},
        {"userName": "x", "emails": [{"value": "not-an-email"}]},
        {"userName": "a@b.io", "active": "maybe"},
        [],
    ],
)
async def test_bad_users_are_400(scim: httpx.AsyncClient, body: Any) -> None:
    response = await scim.post("/Users", json=body)
    assert (response.status_code, response.json()["status"]) == (400, "400")


async def test_a_bad_query_parameter_is_a_scim_400(scim: httpx.AsyncClient) -> None:
    response = await scim.get("/Users?count=many")
    assert (response.status_code, response.json()["scimType"], response.headers["content-type"]) == (
        400,
        "invalidValue",
        "application/scim+json",
    )


async def test_users_sent_at_once_whose_usernames_differ_only_in_case_make_one_learner(
    scim: httpx.AsyncClient,
) -> None:
    """A directory may send requests side by side: both pass the check for the other (neither is saved yet)
    unless the check and the insert are one step for the customer's directory."""
    user_names = ["jdoe", "JDoe", "JDOE", "jDoe"]
    answers = await asyncio.gather(
        *(
            scim.post(
                "/Users",
                json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name, "active": True},
            )
            for name in user_names
        )
    )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    found = await scim.get("/Users", params={"filter": 'userName eq "jdoe"'})
    assert found.json()["totalResults"] == 1


async def test_a_username_with_letters_beyond_ascii_is_one_user_in_any_case(scim: httpx.AsyncClient) -> None:
    """userName is not case-exact (RFC 7643): `Ülla` and `ülla` are one user on every database, as `JDoe` and
    `jdoe` are (SQLite's own lower() knows only ASCII letters)."""
    first = await scim.post(
        "/Users", json={"userName": "ÜLLA", "emails": [{"value": "u1@example.com", "type": "work"}]}
    )
    again = await scim.post(
        "/Users", json={"userName": "ülla", "emails": [{"value": "u2@example.com", "type": "work"}]}
    )
    found = await scim.get("/Users", params={"filter": 'userName eq "ülla"'})
    assert (first.status_code, again.status_code, found.json()["totalResults"]) == (201, 409, 1)


async def test_a_token_revoked_twice_at_once_is_revoked_once(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tokens = (
        await api.get(f"/customers/{tenant.customer_id}/scim-tokens", headers=tenant.customer_manager.headers)
    ).json()["items"]
    url = f"/customers/{tenant.customer_id}/scim-tokens/{tokens[0]['id']}"
    answers = await asyncio.gather(*(api.delete(url, headers=tenant.customer_manager.headers) for _ in range(6)))
    async with sessions() as session:
        recorded = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.subject_id == uuid.UUID(tokens[0]["id"]), AuditEvent.action == "scim_token.revoked")
        )
    assert ([a.status_code for a in answers], recorded) == ([204] * 6, 1)


async def test_a_filter_finds_an_address_however_its_domain_is_spelt(scim: httpx.AsyncClient) -> None:
    """Entra ID may send a domain in punycode where the address was stored with it in Unicode, or the other way."""
    created = await scim.post("/Users", json=entra_user(user_name="bob@exämple.com", email="bob@exämple.com"))
    by_user_name = await scim.get('/Users?filter=userName eq "Bob@xn--exmple-cua.com"')
    by_email = await scim.get('/Users?filter=emails.value eq "bob@XN--EXMPLE-CUA.COM"')
    assert created.status_code == 201
    assert [r["id"] for r in by_user_name.json()["Resources"]] == [created.json()["id"]]
    assert [r["id"] for r in by_email.json()["Resources"]] == [created.json()["id"]]


@pytest.mark.parametrize("user_name", ["bob@xn--exmple-cua.com", unicodedata.normalize("NFD", "lée@example.com")])
async def test_a_filter_finds_a_user_name_as_the_directory_spelt_it(scim: httpx.AsyncClient, user_name: str) -> None:
    """Entra looks a user up by its userName before creating it; kept as sent, it is found as sent."""
    created = await scim.post("/Users", json=entra_user(user_name=user_name, email="lee@example.com"))
    found = await scim.get(f'/Users?filter=userName eq "{user_name}"')
    assert [r["id"] for r in found.json()["Resources"]] == [created.json()["id"]]


async def test_a_directory_users_upn_added_by_hand_or_by_csv_is_the_learner_already_there(
    scim: httpx.AsyncClient, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    """Entra provisions Jane by her UPN with another work mailbox; a manager then adds her UPN by hand and in a file.
    SCIM refuses a second user by either address, and so do the other ways in: one learner, one licence."""
    await licences_for(api, tenant, 3)
    made = await scim.post("/Users", json=entra_user(user_name="Jane.Doe@Contoso.example", email="jd@contoso.example"))
    assert made.status_code == 201, made.text

    by_hand = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": "jane.doe@contoso.example", "name": "Jane"},
        headers=tenant.customer_manager.headers,
    )
    done = await finished(api, tenant, await upload(api, tenant, csv_of("email,name", "JANE.DOE@contoso.example,Jane")))

    assert by_hand.status_code == 409, by_hand.text
    assert "already exists" in by_hand.json()["detail"]
    assert done["created"] == 0
    assert [e["message"] for e in done["errors"]] == ["jane.doe@contoso.example is already a learner of this customer"]
    assert (await counts(api, tenant))["allocated"] == 1
