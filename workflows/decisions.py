"""An order's decisions: the key a decision's transaction carries, and how a transaction's business refusal
reaches the update's caller."""

import uuid

from temporalio.exceptions import ActivityError, ApplicationError

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


def business_failure(error: ActivityError | ApplicationError) -> ApplicationError:
    """Hand a transaction's business refusal to the update's caller with its type intact."""
    refusal = refusal_in(error)
    if refusal is not None:
        return ApplicationError(refusal.message, type=refusal.type, non_retryable=True)
    return ApplicationError(str(error), type="ActivityFailed", non_retryable=True)
