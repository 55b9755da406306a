"""A partner's licence stock statement: every purchase credited and every order assigned from it, newest first.

The statement is read from the audit trail: the event of each credit and each debit is written in the transaction
that moves the stock, with the stock it left, so the statement cannot miss a move or show one that did not happen.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditEvent, Customer

CREDITED = "licence_stock.credited"
DEBITED = "licence_stock.debited"
KIND = {CREDITED: "purchase", DEBITED: "assignment"}


@dataclass(frozen=True)
class StockMove:
    id: uuid.UUID
    at: datetime
    kind: str
    change: int
    licence_stock: int | None
    reference: str | None
    order_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    customer_name: str | None
    by_id: uuid.UUID | None


def moves_of(partner_id: uuid.UUID) -> Select[AuditEvent, str]:
    """The partner's stock events with the name of the customer each debit was for (a statement to page)."""
    return (
        select(AuditEvent, Customer.name)
        .outerjoin(Customer, Customer.id == AuditEvent.customer_id)
        .where(AuditEvent.partner_id == partner_id, AuditEvent.action.in_(KIND))
    )


def stock_move(event: AuditEvent, customer_name: str | None) -> StockMove:
    details = event.details
    quantity = int(details["quantity"])
    order_id = details.get("order_id")
    stock = details.get("licence_stock")
    return StockMove(
        id=event.id,
        at=event.at,
        kind=KIND[event.action],
        change=quantity if event.action == CREDITED else -quantity,
        licence_stock=None if stock is None else int(stock),
        reference=details.get("reference"),
        order_id=None if order_id is None else uuid.UUID(order_id),
        customer_id=event.customer_id,
        customer_name=customer_name,
        by_id=event.actor_id,
    )


async def statement(session: AsyncSession, query: Select[AuditEvent, str]) -> list[StockMove]:
    return [stock_move(event, name) for event, name in await session.execute(query)]
