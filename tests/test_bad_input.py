"""Bad input found in review: each once answered 500, or a message a person could not act on."""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from payloads.common import Role
from tests import factories
from tests.factories import Tenant
from tests.test_learner_import import upload
from tests.test_scim import PATCH, entra_user


async def test_a_cursor_without_a_time_zone_is_400(api: httpx.AsyncClient, tenant: Tenant) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00", str(uuid.uuid4())]).encode()).decode()
    response = await api.get(
        f"/partners/{tenant.partner_id}/licence-orders?cursor={cursor}", headers=tenant.partner_manager.headers
    )
    assert response.status_code == 400


async def test_a_csv_field_too_large_to_read_is_422(api: httpx.AsyncClient, tenant: Tenant) -> None:
    content = b'email,name\r\na@example.com,"' + b"x" * 200_000 + b'"\r\n'
    refused = await upload(api, tenant, content, expect=422)
    assert "row 2" in refused["detail"]


async def test_a_nul_character_in_a_name_is_422(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.post(
        f"/customers/{tenant.customer_id}/learners",
        json={"email": "nul@example.com", "name": "Bad\u0000Name"},
        headers=tenant.customer_manager.headers,
    )
    assert response.status_code == 422


async def test_messages_for_bad_input_read_as_written_for_people(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """No Python names of allowed values, no "Value error," label, and the message that fits what was sent."""
    operator = await factories.person(sessions, Role.OPERATOR)
    role = await api.post(
        "/users", json={"email": "w@example.com", "name": "W", "role": "wizard"}, headers=operator.headers
    )
    allocations = f"/customers/{tenant.customer_id}/licence-allocations"
    nobody = await api.post(allocations, json={}, headers=tenant.customer_manager.headers)
    both = await api.post(
        allocations,
        json={"learner_ids": [str(uuid.uuid4())], "all": "expired"},
        headers=tenant.customer_manager.headers,
    )
    assert role.status_code == 422
    assert role.json()["detail"] == "role: Input should be 'operator', 'partner_manager' or 'customer_manager'"
    assert (nobody.status_code, nobody.json()["detail"]) == (
        422,
        'say whom to allocate to: "learner_ids": [...] or "all": "expired" (or "unlicensed")',
    )
    assert both.json()["detail"].startswith('send either "learner_ids"') and both.json()["detail"].endswith("not both")


async def test_a_training_record_completed_in_the_future_is_422(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learner = (
        await api.post(
            f"/customers/{tenant.customer_id}/learners",
            json={"email": f"f-{uuid.uuid4().hex[:6]}@example.com", "name": "Fay"},
            headers=tenant.customer_manager.headers,
        )
    ).json()
    url = f"/customers/{tenant.customer_id}/learners/{learner['id']}/training-records"
    answers = [
        await api.post(
            url,
            json={"course": "Fire safety", "completed_at": when.isoformat(), "score": 90},
            headers=tenant.customer_manager.headers,
        )
        for when in (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime.now(UTC) + timedelta(minutes=1))
    ]
    assert [answer.status_code for answer in answers] == [422, 201]  # a clock a minute ahead is forgiven
    assert answers[0].json()["detail"].startswith("completed_at: is in the future")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/Users/.search", {"filter": 42}),
        ("POST", "/Users/.search", {"attributes": [1]}),
        ("GET", "/Users?startIndex=99999999999999999999", None),
        ("POST", "/Users", {**entra_user(), "userName": "u" * 400}),
        ("POST", "/Users", {**entra_user(), "externalId": "bad\u0000id"}),
    ],
)
async def test_bad_scim_requests_are_not_500(
    scim: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
) -> None:
    response = await scim.request(method, path, json=body)
    assert response.status_code < 500, response.text


async def test_a_patch_through_a_name_that_is_not_an_object_is_handled(scim: httpx.AsyncClient) -> None:
    created = (await scim.post("/Users", json=entra_user())).json()
    response = await scim.patch(
        f"/Users/{created['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": "name", "value": "just a string"},
                {"op": "replace", "path": "name.givenName", "value": "Given"},
            ],
        },
    )
    assert response.status_code in (200, 400)


async def test_deeply_nested_json_is_400(scim: httpx.AsyncClient) -> None:
    response = await scim.post("/Users", content=b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_user_nested_deep_but_within_what_json_reads_is_400(scim: httpx.AsyncClient, method: str) -> None:
    """Deep enough to exhaust the stack of the code that reads a User or a PatchOp, not of the JSON parser."""
    nested = "[" * 600 + "]" * 600
    user = f'{{"userName": "deep@example.com", "name": {{"givenName": {nested}}}}}'
    patch = f'{{"Operations": [{{"op": "replace", "value": {{"displayName": {nested}}}}}]}}'
    if method == "POST":
        response = await scim.post("/Users", content=user)
    else:
        created = await scim.post("/Users", json={"userName": "deep@example.com"})
        response = await scim.patch(f"/Users/{created.json()['id']}", content=patch)
    assert (response.status_code, response.json()["scimType"]) == (400, "invalidSyntax")


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_cursor_whose_time_falls_off_the_calendar_in_utc_is_400(
    api: httpx.AsyncClient, tenant: Tenant, at: str
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([at, str(uuid.uuid4())]).encode()).decode()
    response = await api.get("/audit-events", params={"cursor": cursor}, headers=tenant.customer_manager.headers)
    assert (response.status_code, "start again without it" in response.json()["detail"]) == (400, True)


async def test_a_completion_time_that_falls_off_the_calendar_in_utc_is_422(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    learner = await factories.learner(sessions, tenant)
    response = await api.post(
        f"/customers/{tenant.customer_id}/learners/{learner.id}/training-records",
        json={"course": "Fire safety", "completed_at": "0001-01-01T00:00:00+14:00", "score": 80},
        headers=tenant.customer_manager.headers,
    )
    assert (response.status_code, "out of range" in response.text) == (422, True)


async def test_a_header_value_beyond_ascii_is_read_not_a_500(api: httpx.AsyncClient, tenant: Tenant) -> None:
    """HTTP allows bytes 0x80 - 0xFF in a header's value (obs-text); a server passes them on as they came."""
    ours = {name.encode(): value.encode() for name, value in tenant.customer_manager.headers.items()}
    assert (await api.get("/users/me", headers={**ours, b"X-Client-Note": b"caf\xe9"})).status_code == 200
    url = f"/customers/{tenant.customer_id}/learners"
    not_utf8 = await api.post(
        url, json={"email": "a@example.com", "name": "A"}, headers={**ours, b"Idempotency-Key": b"k\xe9"}
    )
    assert (not_utf8.status_code, not_utf8.json()["detail"]) == (400, "Idempotency-Key must be text in UTF-8")


async def test_an_idempotency_key_is_counted_in_characters_not_bytes(api: httpx.AsyncClient, tenant: Tenant) -> None:
    ours = {name.encode(): value.encode() for name, value in tenant.customer_manager.headers.items()}
    keyed = {**ours, b"Idempotency-Key": ("é" * 150 + uuid.uuid4().hex[:8]).encode()}  # 158 characters, 308 bytes
    body = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Clé"}
    first = await api.post(f"/customers/{tenant.customer_id}/learners", json=body, headers=keyed)
    again = await api.post(f"/customers/{tenant.customer_id}/learners", json=body, headers=keyed)
    assert (first.status_code, again.status_code, again.json()["id"]) == (201, 201, first.json()["id"])


@pytest.mark.parametrize("field", ["startIndex", "count"])
async def test_a_scim_search_index_beyond_any_number_is_400(scim: httpx.AsyncClient, field: str) -> None:
    body = b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "%s": 1e400}' % field.encode()
    response = await scim.post("/Users/.search", content=body)
    assert (response.status_code, response.json()["scimType"]) == (400, "invalidValue")


async def test_a_scim_text_with_half_a_utf16_pair_is_400(scim: httpx.AsyncClient) -> None:
    response = await scim.post(
        "/Users", content=b'{"userName": "sue@example.com", "name": {"formatted": "Sue \\ud800"}}'
    )
    assert (response.status_code, response.json()["scimType"]) == (400, "invalidValue")
    assert "lone surrogate" in response.json()["detail"]


async def test_a_missing_body_or_one_that_is_not_json_says_what_to_send(api: httpx.AsyncClient, tenant: Tenant) -> None:
    learners = f"/customers/{tenant.customer_id}/learners"
    headers = tenant.customer_manager.headers
    none = await api.post(learners, headers=headers)
    as_text = await api.post(
        learners,
        content=b'{"email": "t@example.com", "name": "T"}',
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert (none.status_code, as_text.status_code) == (422, 422)
    assert none.json()["detail"] == "the request has no body: send a JSON object with Content-Type: application/json"
    assert as_text.json()["detail"] == "the body must be a JSON object, sent with Content-Type: application/json"


@pytest.mark.parametrize("attribute", ["userName", "externalId", "emails"])
async def test_a_scim_filter_value_with_a_nul_finds_nobody_on_every_database(
    scim: httpx.AsyncClient, attribute: str
) -> None:
    response = await scim.get("/Users", params={"filter": f'{attribute} eq "a\u0000@example.com"'})
    assert (response.status_code, response.json()["totalResults"]) == (200, 0)
