"""An order's transactions: how they run (local activity, else activity), the key a decision's transaction
carries, and how a transaction's business refusal reaches the update's caller."""

import uuid
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from payloads.common import Actor
    from payloads.orders import AssignOrder, CloseOrder, LicenceOrderInput, LicenceTerm
    from rules.durations import add_duration, parse_duration
    from rules.errors import OrderNotRequested
    from rules.orders import OrderDecision, OrderStatus, decide
    from workflows import options
    from workflows.order_patches import CANCELLED_BY_OPERATOR

_LONG_UPDATE_IDS = uuid.UUID("8c1f4b7e-2d6a-4e39-9b50-3f7a1c9d2e64")


def key(update_id: str) -> str:
    """The update's id as the order keeps it (`licence_orders.decision_key` holds 200 characters; the API's ids
    are uuids, a caller's own may be longer)."""
    return update_id if len(update_id) <= 200 else str(uuid.uuid5(_LONG_UPDATE_IDS, update_id))


def refusal_in(error: ActivityError | ApplicationError) -> ApplicationError | None:
    """The business refusal a transaction failed with: an activity's failure wraps it, a local activity's
    failure is the refusal itself."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return cause if isinstance(cause, ApplicationError) else None


def never_an_order(refusal: ApplicationError) -> ApplicationError:
    """A decision's answer when the request was refused before it was saved."""
    return ApplicationError(
        f"the request was refused and never became an order: {refusal.message}",
        type=OrderNotRequested.type,
        non_retryable=True,
    )


def business_failure(error: ActivityError | ApplicationError) -> ApplicationError:
    """Hand a transaction's business refusal to the update's caller with its type intact."""
    refusal = refusal_in(error)
    if refusal is not None:
        return ApplicationError(refusal.message, type=refusal.type, non_retryable=True)
    return ApplicationError(str(error), type="ActivityFailed", non_retryable=True)


Result = TypeVar("Result", bound=BaseModel)


async def transaction(
    activity: str, data: BaseModel, result_type: type[Result], summary: str, *, local: bool
) -> Result:
    """One of the order's own transactions (saving it, deciding it); `local` (since `order-steps-local`) as a
    local activity. A local activity that keeps failing (the database away) hands the same transaction to an
    activity, which retries until it succeeds; the transaction knows itself if an attempt had committed."""
    if local:
        try:
            ran: Result = await workflow.execute_local_activity(
                activity, data, result_type=result_type, summary=summary, **options.LOCAL_DATABASE
            )
            return ran
        except (ActivityError, ApplicationError) as error:
            refusal = refusal_in(error)
            if is_cancelled_exception(error) or (refusal is not None and refusal.non_retryable):
                raise  # the workflow cancelled, or a business refusal: the caller's answer
            # Its attempts used up, by failures or timeouts.
            workflow.logger.warning("%s kept failing in the worker (%s); retrying it as an activity", activity, error)
    result: Result = await workflow.execute_activity(
        activity, data, result_type=result_type, summary=summary, **options.DATABASE
    )
    return result


def refuse_unless_open(
    decision: OrderDecision,
    status: OrderStatus,
    *,
    refused: ApplicationError | None,
    deciding: OrderDecision | None,
    cancelled: bool,
    checking: bool,
) -> None:
    """An update's validator: refuse a decision the order cannot take now (never saved, another decision or a
    check under way, its workflow cancelled, or already decided)."""
    if refused is not None:
        raise never_an_order(refused)
    if deciding is not None:
        raise ApplicationError(
            f"the order is being {deciding.past} right now; try again in a moment", type=OrderNotRequested.type
        )
    if cancelled:
        raise ApplicationError(
            f"the order is being closed: {CANCELLED_BY_OPERATOR}", type=OrderNotRequested.type, non_retryable=True
        )
    if checking:
        raise ApplicationError(
            "the order's decision is being checked right now; try again in a moment", type=OrderNotRequested.type
        )
    try:
        decide(status, decision)
    except OrderNotRequested as refusal:
        raise ApplicationError(refusal.message, type=refusal.type) from None


def assign_order(order: LicenceOrderInput, actor: Actor, now: datetime, *, notify: bool) -> AssignOrder:
    """The assignment's transaction at `now`: the licence term runs from then. With `notify` (since
    notices-with-decisions) it also writes the notices and starts the term."""
    return AssignOrder(
        order_id=order.order_id,
        actor=actor,
        assigned_at=now,
        expires_at=add_duration(now, parse_duration(order.licence_term, bounded=False)),  # captured at request
        notify=notify,
        start_term=LicenceTerm.of_order(order) if notify else None,
    )


def close_order(
    order: LicenceOrderInput, actor: Actor, status: OrderStatus, now: datetime, *, reason: str | None, notify: bool
) -> CloseOrder:
    """A rejection (with its reason) or a cancellation at `now`."""
    return CloseOrder(order_id=order.order_id, actor=actor, status=status, decided_at=now, reason=reason, notify=notify)
