"""Durations that no calendar date can be moved by (P9999Y as an operator's "never") are refused when parsed, so
the settings refuse them at startup; accepted, they failed every term or order workflow task computed with them."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from licensing.config import Settings
from rules.durations import InvalidDuration, parse_duration
from rules.licences import renewal_reminders, term_end
from rules.orders import reminder_time

NOW = datetime(2026, 1, 31, 9, tzinfo=UTC)


@pytest.mark.parametrize("text", ["P9999Y", "P100000M", "P3000000D", "P500000W"])
def test_a_duration_past_the_calendar_is_refused_when_parsed(text: str) -> None:
    with pytest.raises(InvalidDuration):
        parse_duration(text)


def test_a_term_end_is_never_an_unexplained_value_error() -> None:
    with pytest.raises(InvalidDuration):
        term_end(NOW, "P9999Y")


def test_a_renewal_reminder_longer_than_the_calendar_is_not_a_crash_of_the_term() -> None:
    """A term's captured offset of P5000Y (accepted before the limit) falls before year 1: before the term, not sent."""
    reminders = renewal_reminders(term_end(NOW, "P12M"), ["P30D", "P5000Y", "P3000000D"], starts_at=NOW)
    assert [r.offset for r in reminders] == ["P30D"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("licence_term", "P9999Y"),
        ("trial_term", "P3000000D"),
        ("order_reminder_after", "P9999Y"),
        ("renewal_reminders", "P30D,P5000Y"),
    ],
)
def test_the_settings_refuse_a_duration_past_the_calendar(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match="longer than any calendar reaches"):
        Settings.model_validate({field: value})


def test_a_duration_with_thousands_of_digits_is_refused_with_the_durations_message() -> None:
    with pytest.raises(InvalidDuration, match=r"ISO 8601 duration|calendar"):
        parse_duration("P" + "9" * 5000 + "D")


def test_a_far_reminder_number_is_computed_at_once() -> None:
    """`reminder_time` runs inside the order's workflow task, where the SDK's deadlock detector stops a task that
    does not yield within 2 s: a demo's PT1S interval after a week-long worker outage (ONE_LATE_REMINDER numbers
    the next reminder ~600,000) must not add the interval 600,000 times, one by one."""
    every = parse_duration("PT1S")
    started = time.perf_counter()
    due = reminder_time(NOW, every, 5_000_000)
    assert (due, time.perf_counter() - started < 0.5) == (NOW + timedelta(seconds=5_000_000), True)
