"""How the API talks to `licence-order-{order_id}`: start it with an update that returns once the order is saved,
and send decisions as updates. The workflow decides; the API only reports."""

import asyncio
import uuid
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.errors import ServiceUnavailable
from licensing.config import Settings
from licensing.orders import order_workflow_id
from payloads.common import Actor
from payloads.orders import (
    AssignRequest,
    CancelRequest,
    LicenceOrderInput,
    OrderOutcome,
    OrderRegistered,
    RejectRequest,
)
from rules.orders import OrderDecision, OrderStatus
from rules.wording import counted
from workflows import search
from workflows.order import LicenceOrderWorkflow

# How long a caller waits for the workflow's answer. Past it, the work may still finish: the answer says so.
ANSWER_WITHIN_SECONDS = 30.0
T = TypeVar("T")


async def _answer(call: Awaitable[T], still_running: str) -> T:
    try:
        async with asyncio.timeout(ANSWER_WITHIN_SECONDS):
            return await call
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        # The client gave up waiting (or the server's long poll did): the workflow may still finish the work.
        raise ServiceUnavailable(still_running) from None


_KEYED_ORDERS = uuid.UUID("0d9e4c2a-51f7-4e8b-9a36-7c0f52be1d84")


def new_order_id(idempotency_key: str | None, *, requester: uuid.UUID, customer_id: uuid.UUID, body: str) -> uuid.UUID:
    """The id of a requested order. With an Idempotency-Key it follows from the key's use (`keyed_use`), the
    requester, the customer and the request's body, so that a retry of an attempt that was not answered (a 503:
    the order may still be saved) reaches the same workflow instead of making a second order; without a key, a
    fresh id."""
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(_KEYED_ORDERS, "\n".join((str(requester), str(customer_id), body, idempotency_key)))


async def request_order(
    client: Client,
    settings: Settings,
    *,
    order_id: uuid.UUID,
    partner_id: uuid.UUID,
    customer_id: uuid.UUID,
    quantity: int,
    actor: Actor,
) -> OrderRegistered | None:
    """The saved order, from its workflow (a new one, or the running one with this id); None if that workflow
    has already ended (the order, if it was saved, is in the database)."""
    start = WithStartWorkflowOperation(
        LicenceOrderWorkflow.run,
        LicenceOrderInput(
            order_id=order_id,
            partner_id=partner_id,
            customer_id=customer_id,
            quantity=quantity,
            requested_by=actor,
            licence_term=settings.licence_term,
            renewal_reminders=settings.renewal_reminder_offsets,
            reminder_after=settings.order_reminder_after,
            waiting_limit=settings.max_open_orders_per_customer,
        ),
        id=order_workflow_id(order_id),
        task_queue=settings.task_queue,
        # A keyed retry joins the workflow its first attempt started, and never starts a second one once it ended.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=search.for_order(partner_id, customer_id, OrderStatus.REQUESTED.value),
        static_summary=f"Licence order: {counted(quantity, 'licence')}",
        static_details=f"Order {order_id} of customer {customer_id} (partner {partner_id}).",
    )
    try:
        return await _answer(
            client.execute_update_with_start_workflow(LicenceOrderWorkflow.registered, start_workflow_operation=start),
            f"order {order_id} was received but is not saved yet; it will appear in the customer's orders shortly",
        )
    except WorkflowAlreadyStartedError:
        return None


Resumed = WithStartWorkflowOperation[LicenceOrderWorkflow, OrderOutcome | None]
_STILL_DECIDING = "the decision on order {} is still being processed; read the order again in a moment"


_KEYED_DECISIONS = uuid.UUID("5b8f2d6e-3c41-4a7f-8e0b-9d2c6a1f4e73")


def decision_id(
    idempotency_key: str | None, *, decision: str, decider: uuid.UUID | None, order_id: uuid.UUID
) -> str | None:
    """The id of the update that carries a decision. With an Idempotency-Key it follows from the key's use
    (`keyed_use`), the decider, the order and the decision: a retry of an attempt that was not answered (a 503: the
    decision may still be made) is the same update, which Temporal runs once, and the order keeps it
    (`decision_key`) once decided. Without a key, None: the SDK makes a fresh one."""
    if idempotency_key is None:
        return None
    return str(uuid.uuid5(_KEYED_DECISIONS, "\n".join((decision, str(decider), str(order_id), idempotency_key))))


DecisionRequest = AssignRequest | RejectRequest | CancelRequest


async def decide(
    client: Client,
    order_id: uuid.UUID,
    decision: OrderDecision,
    request: DecisionRequest,
    resumed: Resumed | None = None,
    update_id: str | None = None,
) -> OrderOutcome:
    """The decision sent to the order's workflow as its update of the same name (`update_id`: see
    `decision_id`); with `resumed`, to a run started for it (the previous one had ended without deciding the
    order), the decision first."""
    if resumed is None:
        handle = client.get_workflow_handle_for(LicenceOrderWorkflow.run, order_workflow_id(order_id))
        call = handle.execute_update(decision.value, request, id=update_id, result_type=OrderOutcome)
    else:
        call = client.execute_update_with_start_workflow(
            decision.value, request, start_workflow_operation=resumed, id=update_id, result_type=OrderOutcome
        )
    return await _answer(call, _STILL_DECIDING.format(order_id))
