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
