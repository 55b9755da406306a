"""A page cursor that decodes to the right shape but not to a time and an id (an edited or forged one) is a 400
that says to start again, on every paged list: never a 500."""

import base64
import json

import httpx
import pytest

from tests.factories import Person, Tenant


def _cursor(raw: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode()


@pytest.mark.parametrize(
    "raw",
    [
        ["2026-01-01T00:00:00+00:00", 5],  # an id that is a number
        ["2026-01-01T00:00:00+00:00", [1]],  # an id that is a list
        ["2026-01-01T00:00:00+00:00", {"a": 1}],
        [20260101, "00000000-0000-0000-0000-000000000000"],  # a time that is a number
    ],
)
async def test_a_cursor_of_another_shape_is_400_on_the_stock_statement_and_the_partners_list(
    api: httpx.AsyncClient, tenant: Tenant, operator: Person, raw: object
) -> None:
    for path in (f"/partners/{tenant.partner_id}/licence-stock", "/partners", "/audit-events"):
        response = await api.get(path, params={"cursor": _cursor(raw)}, headers=operator.headers)
        assert response.status_code == 400, (path, response.text)
        assert "start again" in response.json()["detail"]


async def test_a_cursor_is_good_for_its_own_list_and_filters_only(api: httpx.AsyncClient, tenant: Tenant) -> None:
    """A cursor sent with another list, or with other filters, would silently give a later part of that list: it
    is a 400 naming why; with its own list and filters (whatever the limit) it gives the next page."""
    headers = tenant.customer_manager.headers
    learners = f"/customers/{tenant.customer_id}/learners"
    for n in range(3):
        added = await api.post(
            learners, json={"email": f"paged-{n}@example.com", "name": f"Paged {n}"}, headers=headers
        )
        assert added.status_code == 201, added.text
    # The tenant has no licences: its learners are unlicensed.
    first = await api.get(learners, params={"limit": 1, "licence_status": "unlicensed"}, headers=headers)
    cursor = first.json()["next_cursor"]
    assert cursor is not None, first.text
    following = await api.get(
        learners, params={"limit": 2, "licence_status": "unlicensed", "cursor": cursor}, headers=headers
    )
    assert following.status_code == 200, following.text
    assert len(following.json()["items"]) == 2
    for path, params in (
        (learners, {"licence_status": "active"}),  # another filter
        (learners, {}),  # the filter left out
        ("/audit-events", {"customer_id": str(tenant.customer_id)}),  # another list
    ):
        refused = await api.get(path, params={**params, "cursor": cursor}, headers=headers)
        assert refused.status_code == 400, (path, params, refused.text)
        assert "another list or other filters" in refused.json()["detail"]


async def test_a_cursor_given_out_before_cursors_were_bound_still_pages(api: httpx.AsyncClient, tenant: Tenant) -> None:
    headers = tenant.customer_manager.headers
    learners = f"/customers/{tenant.customer_id}/learners"
    for n in range(2):
        await api.post(learners, json={"email": f"older-{n}@example.com", "name": f"Older {n}"}, headers=headers)
    first = (await api.get(learners, params={"limit": 1}, headers=headers)).json()
    at, ident, _ = json.loads(base64.urlsafe_b64decode(first["next_cursor"]))
    older = await api.get(learners, params={"limit": 1, "cursor": _cursor([at, ident])}, headers=headers)
    assert (older.status_code, [i["email"] for i in older.json()["items"]]) == (200, ["older-0@example.com"])
