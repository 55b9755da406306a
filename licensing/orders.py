"""An order's workflow started again: for a saved order still requested whose workflow ended without deciding it
(terminated by hand, in the Web UI or with `temporal workflow terminate`). The new run picks the wait up where the
database leaves it (the reminders already due count as sent; the last one is sent again, which sends nothing
twice), first looks for a decision made meanwhile, and can then be decided as any order."""

import uuid
from datetime import datetime
from typing import TypedDict

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from db.models import LicenceOrder
from licensing.config import Settings
from licensing.runs import latest_status
from payloads.common import Actor, Role
from payloads.orders import LicenceOrderInput, OrderOutcome
from rules.durations import parse_duration
from rules.orders import OrderStatus, reminders_due
from rules.wording import counted
from workflows import search
from workflows.order import LicenceOrderWorkflow


def order_workflow_id(order_id: uuid.UUID) -> str:
    return f"licence-order-{order_id}"


def resumed_input(settings: Settings, order: LicenceOrder, now: datetime) -> LicenceOrderInput:
    due = reminders_due(order.requested_at, parse_duration(settings.order_reminder_after), now)
    return LicenceOrderInput(
        order_id=order.id,
        partner_id=order.partner_id,
        customer_id=order.customer_id,
        quantity=order.quantity,
        # Only saving the order reads it, and this order is saved.
        requested_by=Actor(user_id=order.requested_by_id, role=Role.CUSTOMER_MANAGER),
        licence_term=settings.licence_term,
        renewal_reminders=settings.renewal_reminder_offsets,
        reminder_after=settings.order_reminder_after,
        waiting_limit=settings.max_open_orders_per_customer,
        persisted=True,
        reminders_sent=max(0, due - 1),
        waiting_since=order.requested_at,
        resumed=True,
    )


class _Start(TypedDict):
    id: str
    task_queue: str
    id_conflict_policy: WorkflowIDConflictPolicy
    id_reuse_policy: WorkflowIDReusePolicy
    search_attributes: TypedSearchAttributes
    static_summary: str
    static_details: str


def _start(settings: Settings, order: LicenceOrder) -> _Start:
    """Start the order's workflow unless one is running (then join it); a run that has ended is no obstacle."""
    return _Start(
        id=order_workflow_id(order.id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=search.for_order(order.partner_id, order.customer_id, OrderStatus.REQUESTED.value),
        static_summary=f"Licence order: {counted(order.quantity, 'licence')} (started again)",
        static_details=(
            f"Order {order.id} of customer {order.customer_id} (partner {order.partner_id}), requested "
            f"{order.requested_at.isoformat()}; its previous workflow had ended without deciding it."
        ),
    )


def resuming(
    settings: Settings, order: LicenceOrder, now: datetime
) -> WithStartWorkflowOperation[LicenceOrderWorkflow, OrderOutcome | None]:
    """The workflow started again with a decision sent to it (update-with-start): the decision runs first."""
    return WithStartWorkflowOperation(
        LicenceOrderWorkflow.run, resumed_input(settings, order, now), **_start(settings, order)
    )


async def start_again(client: Client, settings: Settings, order: LicenceOrder, now: datetime) -> None:
    """Start a run for the order (or join the one running)."""
    await client.start_workflow(
        LicenceOrderWorkflow.run, resumed_input(settings, order, now), **_start(settings, order)
    )


async def resume_order(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], order_id: uuid.UUID, now: datetime
) -> bool:
    """Start a run for a requested order whose workflow has ended; True if one was started (or, if the API
    started one at the same moment, joined). The order is read
    after its workflow was found ended: a workflow writes its order's decision before it ends, so an order still
    requested then was left waiting (not decided by a run that has just ended)."""
    if await latest_status(client, order_workflow_id(order_id)) is WorkflowExecutionStatus.RUNNING:
        return False
    async with sessions() as session:
        order = await session.get(LicenceOrder, order_id)
    if order is None or order.status != OrderStatus.REQUESTED.value:
        return False
    await start_again(client, settings, order, now)
    return True
