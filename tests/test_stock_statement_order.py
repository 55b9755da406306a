"""The stock statement lists moves in the order the stock moved. An assignment's debit is recorded when its
activity moves the stock, not at the moment the partner decided (the workflow's clock): a purchase credited while
the activity retried through a database outage comes before it, and every line's balance adds up."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import orders
from payloads.common import Actor, Role
from payloads.orders import AssignOrder, PersistOrder
from tests import factories
from tests.factories import Tenant


async def test_the_newest_line_of_the_statement_left_the_stock_the_partner_holds(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    now = datetime.now(UTC)
    order_id = uuid.uuid4()
    requester = Actor(user_id=tenant.customer_manager.id, role=Role.CUSTOMER_MANAGER)
    await orders.persist_order(
        sessions,
        PersistOrder(
            order_id=order_id,
            partner_id=tenant.partner_id,
            customer_id=tenant.customer_id,
            quantity=3,
            requested_by=requester,
            requested_at=now - timedelta(minutes=5),
        ),
    )
    decided_at = now - timedelta(minutes=1)  # the workflow's clock when the partner manager assigned
    await factories.credit(sessions, tenant.partner_id, 20)  # 100 -> 120, while the assignment's activity retries
    await orders.assign_order(  # the activity gets through at last: 120 -> 117
        sessions,
        AssignOrder(
            order_id=order_id,
            actor=Actor(user_id=tenant.partner_manager.id, role=Role.PARTNER_MANAGER),
            assigned_at=decided_at,
            expires_at=decided_at + timedelta(days=365),
        ),
    )

    body = (
        await api.get(f"/partners/{tenant.partner_id}/licence-stock", headers=tenant.partner_manager.headers)
    ).json()

    lines = [(move["kind"], move["change"], move["licence_stock"]) for move in body["items"]]
    assert body["licence_stock"] == 117
    assert lines == [("assignment", -3, 117), ("purchase", 20, 120), ("purchase", 100, 100)]
