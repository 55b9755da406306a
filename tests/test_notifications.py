"""In-app notifications: a manager sees what is new (`?unread=true`) and marks one, or all, read."""

import httpx

from tests.factories import Tenant
from tests.test_api_orders import request_licences


async def _unread(api: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await api.get("/notifications?unread=true", headers=headers)
    assert response.status_code == 200, response.text
    return [n["id"] for n in response.json()["items"]]


async def test_a_notification_read_leaves_the_unread_and_keeps_the_time_it_was_first_read(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    pm = tenant.partner_manager.headers
    await request_licences(api, tenant, 2)
    await request_licences(api, tenant, 3)
    first, second = await _unread(api, pm)
    read = await api.post(f"/notifications/{first}/read", headers=pm)
    again = await api.post(f"/notifications/{first}/read", headers=pm)
    assert (read.status_code, read.json()["read_at"] is not None, again.json()["read_at"]) == (
        200,
        True,
        read.json()["read_at"],
    )
    assert await _unread(api, pm) == [second]
    listed = (await api.get("/notifications", headers=pm)).json()["items"]
    assert {n["id"]: n["read_at"] is None for n in listed} == {first: False, second: True}


async def test_all_read_at_once_counts_those_that_were_unread(api: httpx.AsyncClient, tenant: Tenant) -> None:
    pm = tenant.partner_manager.headers
    for quantity in (1, 2, 3):
        await request_licences(api, tenant, quantity)
    await api.post(f"/notifications/{(await _unread(api, pm))[0]}/read", headers=pm)
    marked = await api.post("/notifications/read", headers=pm)
    again = await api.post("/notifications/read", headers=pm)
    assert (marked.json(), again.json(), await _unread(api, pm)) == ({"marked": 2}, {"marked": 0}, [])


async def test_someone_elses_notification_is_not_found(api: httpx.AsyncClient, tenant: Tenant) -> None:
    await request_licences(api, tenant, 1)
    [theirs] = await _unread(api, tenant.partner_manager.headers)
    response = await api.post(f"/notifications/{theirs}/read", headers=tenant.customer_manager.headers)
    assert (response.status_code, response.json()["detail"]) == (404, f"notification {theirs} not found")
    assert await _unread(api, tenant.partner_manager.headers) == [theirs]
