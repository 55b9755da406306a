"""Payloads of the licence order workflow and its activities."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from payloads.blocks import LicenceBlockInput
from payloads.common import Actor
from payloads.email import EmailsWritten
from rules.orders import OrderStatus


class LicenceOrderInput(BaseModel):
    """Starts `licence-order-{order_id}`. The durations are ISO 8601 settings captured when the order is made."""

    order_id: uuid.UUID
    partner_id: uuid.UUID
    customer_id: uuid.UUID
    quantity: int = Field(gt=0)
    requested_by: Actor
    licence_term: str = "P12M"
    reminder_after: str = "P2D"
    renewal_reminders: list[str] = ["P30D", "P7D"]
    # How many requests a customer may have waiting at once; saving the order checks it again (None: orders
    # started before the check moved into the saving transaction).
    waiting_limit: int | None = None
    # Carried over by continue-as-new, so a long wait does not persist or notify twice.
    persisted: bool = False
    reminders_sent: int = 0
    waiting_since: datetime | None = None
    # Started again for a saved order still requested whose workflow had ended without deciding it (terminated by
    # hand): it first looks in the database for a decision made meanwhile.
    resumed: bool = False


class OrderRegistered(EmailsWritten):
    """The saved order; with it (since "notices-with-decisions") its "requested" emails."""

    order_id: uuid.UUID
    status: OrderStatus
    requested_at: datetime


class AssignRequest(BaseModel):
    actor: Actor


class RejectRequest(BaseModel):
    actor: Actor
    reason: str = Field(min_length=1, max_length=2000)


class CancelRequest(BaseModel):
    actor: Actor


class OrderOutcome(EmailsWritten):
    """A decision's result; with it (since "notices-with-decisions") the decision's emails."""

    order_id: uuid.UUID
    status: OrderStatus
    block_id: uuid.UUID | None = None
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    # When the decision was recorded (None in results recorded before it was carried here).
    decided_at: datetime | None = None


# `notify` (orders started since the "notices-with-decisions" patch): the event's notices are written in the
# same transaction as the change they announce, and their outbox ids come back with its result.


class PersistOrder(BaseModel):
    order_id: uuid.UUID
    partner_id: uuid.UUID
    customer_id: uuid.UUID
    quantity: int
    requested_by: Actor
    requested_at: datetime
    notify: bool = False
    waiting_limit: int | None = None


class LicenceTerm(BaseModel):
    """What the assigning activity needs to start the new block's term workflow once the block is saved."""

    partner_id: uuid.UUID
    customer_id: uuid.UUID
    quantity: int
    renewal_reminders: list[str]

    @classmethod
    def of_order(cls, order: LicenceOrderInput) -> "LicenceTerm":
        return cls(
            partner_id=order.partner_id,
            customer_id=order.customer_id,
            quantity=order.quantity,
            renewal_reminders=order.renewal_reminders,
        )

    def of(self, outcome: "OrderOutcome") -> LicenceBlockInput:
        """The term workflow's input for the block an assignment made."""
        assert outcome.block_id and outcome.starts_at and outcome.expires_at, "only an assignment has a term"
        return LicenceBlockInput(
            block_id=outcome.block_id,
            partner_id=self.partner_id,
            customer_id=self.customer_id,
            kind="premium",
            quantity=self.quantity,
            starts_at=outcome.starts_at,
            expires_at=outcome.expires_at,
            renewal_reminders=self.renewal_reminders,
        )


class AssignOrder(BaseModel):
    order_id: uuid.UUID
    actor: Actor
    assigned_at: datetime
    expires_at: datetime
    notify: bool = False
    start_term: LicenceTerm | None = None
    # The update deciding it (see `CloseOrder.decision_key`).
    decision_key: str | None = None


class CloseOrder(BaseModel):
    """Reject (with a reason) or cancel a requested order."""

    order_id: uuid.UUID
    actor: Actor
    status: OrderStatus
    decided_at: datetime
    reason: str | None = None
    notify: bool = False
    # The id of the update deciding it. A local activity that ran the decision in a workflow task lost with its
    # worker runs again from the same update in a later task, with a later `decided_at`: the key, not the time,
    # says it is the same decision. None (orders before local decisions): the time says it, as the activity's
    # recorded input does not change.
    decision_key: str | None = None


class RecoverDecision(BaseModel):
    """Look for a decision the database holds for an order its workflow still takes for requested; `term`: to
    start the licence term of an assignment found."""

    order_id: uuid.UUID
    term: LicenceTerm


class StoredDecision(BaseModel):
    """The decision found (with its emails still due), or None: the order is requested."""

    outcome: OrderOutcome | None = None


class OrderEvent(StrEnum):
    REQUESTED = "requested"
    REMINDER = "reminder"
    ASSIGNED = "assigned"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @classmethod
    def of_decision(cls, status: OrderStatus) -> "OrderEvent":
        """The event announcing that an order was decided into `status`."""
        if status is OrderStatus.REQUESTED:
            raise ValueError("a requested order is not decided")
        return cls(status.value)


class OrderNotice(BaseModel):
    """Tell the people an order event concerns, by email and in-app. `sequence` numbers the reminders."""

    order_id: uuid.UUID
    event: OrderEvent
    at: datetime
    sequence: int = 0


class NoticeResult(EmailsWritten):
    """The emails (and in-app notices) an event's notify activity wrote."""
