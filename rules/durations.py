"""ISO 8601 durations with calendar months, and the term arithmetic built on them.

A licence term is "12 calendar months", not 365 days: 31 January + 1 month is the last day of February,
and 29 February + 12 months is 28 February of the next year.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_PATTERN = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


# The longest a duration may be, in months and in exact time: a date of this service's time (years 2000 to 7000)
# moved by it, forward or back, stays inside the calendar (years 1 to 9999). A longer one (P9999Y as "never") would
# parse, then fail every term or reminder computed with it, inside the workflows.
_MAX_MONTHS = 1000 * 12
_MAX_EXACT = timedelta(days=1000 * 366)


class InvalidDuration(ValueError):
    """The text is not an ISO 8601 duration such as P12M, P14D or PT30S."""


@dataclass(frozen=True)
class Duration:
    """Calendar months plus an exact span; months are applied first."""

    months: int = 0
    exact: timedelta = timedelta(0)

    def is_zero(self) -> bool:
        return self.months == 0 and self.exact == timedelta(0)


def parse_duration(text: str, *, bounded: bool = True) -> Duration:
    """`bounded`: refuse more than 1000 years. A workflow reading a duration its input captured passes False: the
    value was accepted when captured (by yesterday's rules too), and refusing it now fails every task of it."""
    match = _PATTERN.match(text.strip().upper())
    if match is None:
        raise InvalidDuration(f"{text!r} is not an ISO 8601 duration such as P12M, P14D or PT30S")
    part = {name: value or "0" for name, value in match.groupdict().items()}
    try:
        duration = Duration(
            months=int(part["years"]) * 12 + int(part["months"]),
            exact=timedelta(
                weeks=int(part["weeks"]),
                days=int(part["days"]),
                hours=int(part["hours"]),
                minutes=int(part["minutes"]),
                seconds=float(part["seconds"]),
            ),
        )
    except (OverflowError, ValueError):  # ValueError: more digits than int() converts
        raise InvalidDuration(f"{text[:40]!r} is longer than any calendar reaches") from None
    if bounded and (duration.months > _MAX_MONTHS or duration.exact > _MAX_EXACT):
        raise InvalidDuration(f"{text!r} is longer than any calendar reaches (at most 1000 years)")
    if duration.is_zero():
        raise InvalidDuration(f"{text!r} is zero; a duration must be longer than that")
    return duration


def parse_duration_list(text: str) -> list[Duration]:
    """`P30D,P7D` -> two durations; an empty text is no durations."""
    return [parse_duration(item) for item in text.split(",") if item.strip()]


def add_months(moment: datetime, months: int) -> datetime:
    """Move by calendar months, clamping to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def add_duration(moment: datetime, duration: Duration) -> datetime:
    return add_months(moment, duration.months) + duration.exact


def subtract_duration(moment: datetime, duration: Duration) -> datetime:
    return add_months(moment, -duration.months) - duration.exact
