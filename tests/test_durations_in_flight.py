"""The 1000-year limit on durations holds for settings and the API, not for what a workflow's input captured
before it: an order requested with LICENSING_ORDER_REMINDER_AFTER=P2000Y (an operator's "never remind", on the
calendar: 2026 + 2000 years) can still be decided by a worker running today's rules."""

import asyncio

import httpx

from licensing.config import Settings
from tests.factories import Tenant
from tests.test_api_orders import request_licences


async def test_an_order_waiting_with_a_2000_year_reminder_interval_is_still_assigned(
    settings: Settings, api: httpx.AsyncClient, tenant: Tenant
) -> None:
    settings.order_reminder_after = "P2000Y"  # what its workflow captured before the upgrade (accepted then)
    order = await request_licences(api, tenant, 2)
    assigned = await asyncio.wait_for(
        api.post(f"/licence-orders/{order['id']}/assign", headers=tenant.partner_manager.headers), 60
    )
    assert (assigned.status_code, assigned.json().get("status")) == (200, "assigned"), assigned.text
