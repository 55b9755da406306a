"""Seed steps 1-2 through the API, against a real worker, the Temporal dev server, the database and SMTP."""

import asyncio
import logging
from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.paging import MAX_LIMIT, page_request
from db.models import Customer
from tests import factories
from tests.factories import Person, Tenant
from tests.smtp_server import SmtpServer


async def request_licences(api: httpx.AsyncClient, tenant: Tenant, quantity: int, by: Person | None = None) -> Any:
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-orders",
        json={"quantity": quantity},
        headers=(by or tenant.customer_manager).headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def assign(api: httpx.AsyncClient, order: dict[str, Any], by: Person) -> httpx.Response:
    return await api.post(f"/licence-orders/{order['id']}/assign", headers=by.headers)


async def stock(api: httpx.AsyncClient, tenant: Tenant) -> int:
    response = await api.get(f"/partners/{tenant.partner_id}", headers=tenant.partner_manager.headers)
    return int(response.json()["licence_stock"])


async def eventually(check: Any, within_seconds: float = 20.0) -> None:
    """Wait for something the workflow does after answering (an email); no fixed sleeps."""
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the workflow")
        await asyncio.sleep(0.05)


async def test_seed_steps_one_and_two(api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer) -> None:
    """Manage mode request -> the partner is told -> Requested Orders -> Assign -> the customer is emailed."""
    pm, cm = tenant.partner_manager, tenant.customer_manager
    order = await request_licences(api, tenant, 5, by=pm)
    await eventually(lambda: smtp.inbox.to(pm.email))
    notices = (await api.get("/notifications", headers=pm.headers)).json()["items"]
    requested = await api.get(f"/partners/{tenant.partner_id}/licence-orders?status=requested", headers=pm.headers)
    assigned = await assign(api, requested.json()["items"][0], pm)
    await eventually(lambda: smtp.inbox.to(cm.email))
    licences = (await api.get(f"/customers/{tenant.customer_id}/licences", headers=cm.headers)).json()
    assert (
        [n["kind"] for n in notices],
        [o["id"] for o in requested.json()["items"]],
        assigned.status_code,
        assigned.json()["status"],
        assigned.json()["block"]["id"],
        (licences["total"], licences["available"]),
        await stock(api, tenant),
        str(smtp.inbox.to(cm.email)[0]["Subject"]).startswith("5 licences assigned"),
    ) == (
        ["licence_order.requested"],
        [order["id"]],
        200,
        "assigned",
        licences["blocks"][0]["id"],
        (5, 5),
        95,
        True,
    )


async def test_the_order_answer_has_the_contract_fields(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 2)
    assert {"id", "customer_id", "quantity", "status", "requested_at"} <= order.keys()
    assert (order["quantity"], order["status"], order["customer_id"]) == (2, "requested", str(tenant.customer_id))


async def test_each_answer_is_what_the_order_reads_afterwards(api: httpx.AsyncClient, tenant: Tenant) -> None:
    """The POSTs answer from the workflow's result instead of reading the order back: the same fields."""
    pm, cm = tenant.partner_manager, tenant.customer_manager

    async def read(order_id: str) -> Any:
        return (await api.get(f"/licence-orders/{order_id}", headers=pm.headers)).json()

    to_assign = await request_licences(api, tenant, 3, by=pm)
    to_reject = await request_licences(api, tenant, 2)
    to_cancel = await request_licences(api, tenant, 1)
    requested_then = [to_assign, await read(to_assign["id"])]
    answers = [
        (await assign(api, to_assign, pm)).json(),
        (
            await api.post(f"/licence-orders/{to_reject['id']}/reject", json={"reason": "budget"}, headers=pm.headers)
        ).json(),
        (await api.post(f"/licence-orders/{to_cancel['id']}/cancel", headers=cm.headers)).json(),
    ]
    reads = [await read(answer["id"]) for answer in answers]
    assert requested_then[0] == requested_then[1]
    assert [a["status"] for a in answers] == ["assigned", "rejected", "cancelled"]
    assert answers == reads


async def test_the_assigned_block_runs_twelve_calendar_months(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 1)
    body = (await assign(api, order, tenant.partner_manager)).json()
    decided, expires = body["decided_at"], body["block"]["expires_at"]
    assert (int(expires[:4]) - int(decided[:4]), expires[4:]) == (1, decided[4:])


async def test_manage_mode_is_audited_as_acting_for_the_customer(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 3, by=tenant.partner_manager)
    events = (
        await api.get(f"/audit-events?customer_id={tenant.customer_id}", headers=tenant.customer_manager.headers)
    ).json()["items"]
    [requested] = [e for e in events if e["action"] == "licence_order.requested" and e["subject_id"] == order["id"]]
    assert (requested["actor_id"], requested["manage_mode"], requested["on_behalf_of_customer_id"]) == (
        str(tenant.partner_manager.id),
        True,
        str(tenant.customer_id),
    )


async def test_the_partners_stock_stays_out_of_the_customers_trail(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 2)
    await assign(api, order, tenant.partner_manager)

    async def actions(by: Person, query: str) -> set[str]:
        events = (await api.get(f"/audit-events{query}", headers=by.headers)).json()["items"]
        return {e["action"] for e in events if order["id"] in (e["subject_id"], e["details"].get("order_id"))}

    seen = {
        "customer": await actions(tenant.customer_manager, ""),
        "customer, filtered": await actions(tenant.customer_manager, f"?customer_id={tenant.customer_id}"),
        "partner, filtered": await actions(tenant.partner_manager, f"?customer_id={tenant.customer_id}"),
    }
    assert seen == {
        "customer": {"licence_order.requested", "licence_order.assigned"},
        "customer, filtered": {"licence_order.requested", "licence_order.assigned"},
        "partner, filtered": {"licence_order.requested", "licence_order.assigned", "licence_stock.debited"},
    }


async def test_every_answer_about_an_order_names_its_customer(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Requested Orders lists the company that asks, not only its id; so does every other answer about an order."""
    async with sessions() as session:
        name = (await session.get_one(Customer, tenant.customer_id)).name
    pm = tenant.partner_manager.headers
    requested = await request_licences(api, tenant, 2)
    listed = (await api.get(f"/partners/{tenant.partner_id}/licence-orders?status=requested", headers=pm)).json()
    one = (await api.get(f"/licence-orders/{requested['id']}", headers=pm)).json()
    assigned = (await assign(api, requested, tenant.partner_manager)).json()
    names = [requested["customer_name"], listed["items"][0]["customer_name"], one["customer_name"]]
    assert [*names, assigned["customer_name"]] == [name] * 4


async def test_short_stock_is_a_409_that_names_the_shortfall(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 130)
    refused = await assign(api, order, tenant.partner_manager)
    after = await api.get(f"/licence-orders/{order['id']}", headers=tenant.customer_manager.headers)
    assert (refused.status_code, refused.json()["detail"], after.json()["status"], await stock(api, tenant)) == (
        409,
        "the partner's licence stock is 100, 30 short of the 130 licences ordered; buy more stock or reject the order",
        "requested",
        100,
    )


async def test_a_refusal_is_no_warning_in_the_workers_log(
    api: httpx.AsyncClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    """A short stock is an answer to the partner, not a fault for an operator: no warning, no traceback."""
    order = await request_licences(api, tenant, 130)
    with caplog.at_level(logging.DEBUG, logger="temporalio"):
        refused = await assign(api, order, tenant.partner_manager)
    failed = [r for r in caplog.records if r.getMessage().startswith("Completing activity as failed")]
    assert (refused.status_code, [r.levelno for r in failed]) == (409, [logging.DEBUG])


async def test_reject_with_a_reason_emails_the_customer(
    api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer
) -> None:
    order = await request_licences(api, tenant, 4)
    rejected = await api.post(
        f"/licence-orders/{order['id']}/reject",
        json={"reason": "Renewal is due next month"},
        headers=tenant.partner_manager.headers,
    )
    await eventually(lambda: smtp.inbox.to(tenant.customer_manager.email))
    [email] = smtp.inbox.to(tenant.customer_manager.email)
    assert (rejected.json()["status"], rejected.json()["reject_reason"]) == ("rejected", "Renewal is due next month")
    assert "Renewal is due next month" in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_reject_without_a_reason_is_refused(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 4)
    response = await api.post(
        f"/licence-orders/{order['id']}/reject", json={"reason": "  "}, headers=tenant.partner_manager.headers
    )
    assert response.status_code == 422


async def test_the_requester_cancels_a_waiting_order(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 4)
    response = await api.post(f"/licence-orders/{order['id']}/cancel", headers=tenant.customer_manager.headers)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")


async def test_a_partner_manager_cancelling_in_manage_mode_tells_the_customers_managers(
    api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer
) -> None:
    order = await request_licences(api, tenant, 4)  # asked by the customer's manager
    response = await api.post(f"/licence-orders/{order['id']}/cancel", headers=tenant.partner_manager.headers)
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    await eventually(lambda: smtp.inbox.to(tenant.customer_manager.email, about="cancelled"))
    await eventually(lambda: smtp.inbox.to(tenant.partner_manager.email, about="cancelled"))
    [email] = smtp.inbox.to(tenant.customer_manager.email, about="cancelled")
    subject = str(email["Subject"])
    assert (" cancelled the request of " in subject, subject.endswith(" for 4 licences")) == (True, True), subject
    assert "acting for" in str(email.get_body(("plain",)).get_content())  # type: ignore[union-attr]


async def test_an_assigned_order_cannot_be_cancelled(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 4)
    await assign(api, order, tenant.partner_manager)
    response = await api.post(f"/licence-orders/{order['id']}/cancel", headers=tenant.customer_manager.headers)
    assert (response.status_code, response.json()["detail"]) == (
        409,
        "the order is already assigned; only a requested order can be cancelled",
    )


async def test_a_customer_manager_cannot_assign(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 4)
    response = await assign(api, order, tenant.customer_manager)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"quantity": 0},
        {"quantity": -5},
        {"quantity": 10**12},
        {"quantity": "five"},
        {"quantity": "5"},
        {"quantity": 2.5},
        {"quantity": None},
        {},
        {"quantity": 5, "status": "assigned"},
        [5],
    ],
)
async def test_bad_order_bodies_are_422(api: httpx.AsyncClient, tenant: Tenant, body: Any) -> None:
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-orders", json=body, headers=tenant.customer_manager.headers
    )
    assert (response.status_code, type(response.json()["detail"])) == (422, str)


async def test_a_body_that_is_not_json_is_422(api: httpx.AsyncClient, tenant: Tenant) -> None:
    response = await api.post(
        f"/customers/{tenant.customer_id}/licence-orders",
        content=b"quantity=5",
        headers={**tenant.customer_manager.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422


async def test_four_assigns_at_once_move_the_stock_once(api: httpx.AsyncClient, tenant: Tenant) -> None:
    order = await request_licences(api, tenant, 10)
    answers = await asyncio.gather(*(assign(api, order, tenant.partner_manager) for _ in range(4)))
    licences = (
        await api.get(f"/customers/{tenant.customer_id}/licences", headers=tenant.customer_manager.headers)
    ).json()
    assert (sorted(a.status_code for a in answers), await stock(api, tenant), licences["total"]) == (
        [200, 409, 409, 409],
        90,
        10,
    )


async def test_two_orders_racing_for_the_last_stock(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions, stock=6)
    first, second = await request_licences(api, tenant, 4), await request_licences(api, tenant, 4)
    answers = await asyncio.gather(
        assign(api, first, tenant.partner_manager), assign(api, second, tenant.partner_manager)
    )
    assert (sorted(a.status_code for a in answers), await stock(api, tenant)) == ([200, 409], 2)


async def test_requested_orders_page_with_a_cursor(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    made = [(await request_licences(api, tenant, n))["id"] for n in (1, 2, 3)]
    url = f"/partners/{tenant.partner_id}/licence-orders?status=requested&limit=2"
    first = (await api.get(url, headers=tenant.partner_manager.headers)).json()
    second = (await api.get(f"{url}&cursor={first['next_cursor']}", headers=tenant.partner_manager.headers)).json()
    seen = [o["id"] for o in first["items"] + second["items"]]
    assert (seen, second["next_cursor"]) == (list(reversed(made)), None)


async def test_a_page_larger_than_the_cap_is_capped_and_an_empty_one_refused(
    api: httpx.AsyncClient, tenant: Tenant
) -> None:
    url = f"/partners/{tenant.partner_id}/licence-orders"
    capped = await api.get(f"{url}?limit=100000", headers=tenant.partner_manager.headers)
    empty = await api.get(f"{url}?limit=0", headers=tenant.partner_manager.headers)
    assert (capped.status_code, empty.status_code) == (200, 422)
    asked = Request({"type": "http", "path": url, "query_string": b"limit=100000", "headers": []})
    assert page_request(asked, limit=100000, cursor=None).limit == MAX_LIMIT
