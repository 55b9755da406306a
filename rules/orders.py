"""Licence orders: `requested -> assigned | rejected | cancelled`, and the stock check on assignment."""

from datetime import datetime
from enum import StrEnum

from rules.durations import Duration, add_duration
from rules.errors import Conflict, InsufficientStock, OrderNotRequested


class OrderStatus(StrEnum):
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class OrderDecision(StrEnum):
    """What a partner manager or the requester does to a requested order."""

    ASSIGN = "assign"
    REJECT = "reject"
    CANCEL = "cancel"

    @property
    def past(self) -> str:
        return {"assign": "assigned", "reject": "rejected", "cancel": "cancelled"}[self.value]


_OUTCOME = {
    OrderDecision.ASSIGN: OrderStatus.ASSIGNED,
    OrderDecision.REJECT: OrderStatus.REJECTED,
    OrderDecision.CANCEL: OrderStatus.CANCELLED,
}


def decide(current: OrderStatus, decision: OrderDecision) -> OrderStatus:
    """The status a decision leads to; only a requested order can be decided, and only once."""
    if current is not OrderStatus.REQUESTED:
        raise OrderNotRequested(f"the order is already {current.value}; only a requested order can be {decision.past}")
    return _OUTCOME[decision]


def check_stock(*, stock: int, quantity: int) -> None:
    """Assignment debits the partner's stock, which never goes below zero."""
    if quantity > stock:
        raise InsufficientStock(
            f"the partner's licence stock is {stock}, {quantity - stock} short of the {quantity} licences ordered; "
            "buy more stock or reject the order"
        )


def check_waiting(*, waiting: int, limit: int) -> None:
    """A customer may have at most `limit` requests waiting for its partner at once, so that nobody floods a
    partner's managers with requests."""
    if waiting >= limit:
        raise Conflict(
            f"this customer already has {limit} requests waiting for the partner; "
            "cancel one or wait for a decision before requesting more"
        )


def reminder_time(requested_at: datetime, every: Duration, number: int) -> datetime:
    """When reminder `number` (from 1) of a request made at `requested_at` falls due, one every `every`, added in
    turn (a month after the 31st is the 30th or 28th, and the next is a month after that)."""
    if every.months == 0:
        return requested_at + every.exact * number  # the same instant as adding it in turn, without the loop
    due = requested_at
    for _ in range(number):
        due = add_duration(due, every)
    return due


def reminders_due(requested_at: datetime, every: Duration, now: datetime) -> int:
    """How many reminders a request made at `requested_at` has come due for by `now`, one every `every` (added
    in turn, as the order's workflow does)."""
    if every.is_zero():
        raise ValueError("a reminder interval must be longer than zero")
    if every.months == 0:
        return max(0, (now - requested_at) // every.exact)
    due, count = add_duration(requested_at, every), 0
    while due <= now:
        due, count = add_duration(due, every), count + 1
    return count
