"""The pure licence rules: term arithmetic and order transitions."""

from datetime import UTC, datetime, timedelta

import pytest

from rules.durations import (
    Duration,
    InvalidDuration,
    add_duration,
    parse_duration,
    parse_duration_list,
    subtract_duration,
)
from rules.errors import InsufficientStock, OrderNotRequested
from rules.orders import OrderDecision, OrderStatus, check_stock, decide, reminder_time, reminders_due


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P12M", Duration(months=12)),
        ("P1Y", Duration(months=12)),
        ("P14D", Duration(exact=timedelta(days=14))),
        ("PT30S", Duration(exact=timedelta(seconds=30))),
        ("P1Y2M3DT4H5M6S", Duration(months=14, exact=timedelta(days=3, hours=4, minutes=5, seconds=6))),
        ("P2W", Duration(exact=timedelta(weeks=2))),
        ("pt1.5s", Duration(exact=timedelta(seconds=1.5))),
    ],
)
def test_parse_duration(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "12M", "P-1D", "P0D", "1 year", "P1DT", "PT1D"])
def test_parse_duration_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(InvalidDuration):
        parse_duration(text)


def test_reminder_list_keeps_its_order() -> None:
    assert parse_duration_list("P30D, P7D") == [Duration(exact=timedelta(days=30)), Duration(exact=timedelta(days=7))]


@pytest.mark.parametrize(
    ("start", "term", "expires"),
    [
        (at(2026, 3, 15), "P12M", at(2027, 3, 15)),  # an ordinary year
        (at(2028, 2, 29), "P12M", at(2029, 2, 28)),  # leap day -> last day of February
        (at(2028, 2, 29), "P48M", at(2032, 2, 29)),  # and back to a leap day four years on
        (at(2027, 1, 31), "P1M", at(2027, 2, 28)),  # month end clamps
        (at(2028, 1, 31), "P1M", at(2028, 2, 29)),  # in a leap year too
        (at(2026, 8, 31), "P1M", at(2026, 9, 30)),
        (at(2026, 12, 31), "P1M", at(2027, 1, 31)),  # across the year end
        (at(2027, 1, 31), "P12M", at(2028, 1, 31)),
        (at(2026, 11, 27, 23), "PT2H", at(2026, 11, 28, 1)),
        (at(2026, 1, 31), "P1M1D", at(2026, 3, 1)),  # months first, then days
    ],
)
def test_term_arithmetic_uses_calendar_months(start: datetime, term: str, expires: datetime) -> None:
    assert add_duration(start, parse_duration(term)) == expires


def test_reminder_instants_count_back_from_expiry() -> None:
    expires = at(2027, 3, 31)
    assert subtract_duration(expires, parse_duration("P30D")) == at(2027, 3, 1)
    assert subtract_duration(expires, parse_duration("P1M")) == at(2027, 2, 28)


@pytest.mark.parametrize(
    ("decision", "outcome"),
    [
        (OrderDecision.ASSIGN, OrderStatus.ASSIGNED),
        (OrderDecision.REJECT, OrderStatus.REJECTED),
        (OrderDecision.CANCEL, OrderStatus.CANCELLED),
    ],
)
def test_a_requested_order_can_be_decided(decision: OrderDecision, outcome: OrderStatus) -> None:
    assert decide(OrderStatus.REQUESTED, decision) is outcome


@pytest.mark.parametrize("current", [OrderStatus.ASSIGNED, OrderStatus.REJECTED, OrderStatus.CANCELLED])
@pytest.mark.parametrize("decision", list(OrderDecision))
def test_a_decided_order_is_decided_once(current: OrderStatus, decision: OrderDecision) -> None:
    with pytest.raises(OrderNotRequested, match=f"already {current.value}"):
        decide(current, decision)


def test_short_stock_names_the_shortfall() -> None:
    with pytest.raises(InsufficientStock, match="stock is 3, 2 short of the 5 licences"):
        check_stock(stock=3, quantity=5)


def test_stock_that_covers_the_order_passes() -> None:
    check_stock(stock=5, quantity=5)


@pytest.mark.parametrize(
    ("every", "waited", "due"),
    [
        ("P2D", timedelta(days=1, hours=23), 0),
        ("P2D", timedelta(days=2), 1),
        ("P2D", timedelta(days=9), 4),
        ("PT30S", timedelta(minutes=5, seconds=1), 10),
        ("P1M", timedelta(days=56), 2),  # 31 January + 1 month = 28 February; + 1 month = 28 March (day 56)
        ("P1M", timedelta(days=55), 1),
    ],
)
def test_reminders_due_count_the_intervals_a_request_has_waited(every: str, waited: timedelta, due: int) -> None:
    requested = datetime(2026, 1, 31, 9, 0, tzinfo=UTC)
    assert reminders_due(requested, parse_duration(every), requested + waited) == due


@pytest.mark.parametrize(
    ("number", "due"), [(1, datetime(2026, 2, 28, 9, tzinfo=UTC)), (2, datetime(2026, 3, 28, 9, tzinfo=UTC))]
)
def test_a_reminder_falls_due_at_its_turn_and_agrees_with_the_count(number: int, due: datetime) -> None:
    requested, every = datetime(2026, 1, 31, 9, 0, tzinfo=UTC), parse_duration("P1M")
    assert reminder_time(requested, every, number) == due
    assert (reminders_due(requested, every, due), reminders_due(requested, every, due - timedelta(seconds=1))) == (
        number,
        number - 1,
    )


def test_reminders_need_an_interval() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        reminders_due(datetime(2026, 1, 1, tzinfo=UTC), Duration(), datetime(2026, 1, 2, tzinfo=UTC))
