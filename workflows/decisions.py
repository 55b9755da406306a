"""An order's transactions: how they run (local activity, else activity), the key a decision's transaction
carries, and how a transaction's business refusal reaches the update's caller."""

import uuid
from typing import TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from rules.errors import OrderNotRequested
    from workflows import options

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
