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


class InvalidDuration(ValueError):
    """The text is not an ISO 8601 duration such as P12M, P14D or PT30S."""


@dataclass(frozen=True)
class Duration:
    """Calendar months plus an exact span; months are applied first."""

    months: int = 0
    exact: timedelta = timedelta(0)

    def is_zero(self) -> bool:
        return self.months == 0 and self.exact == timedelta(0)


def parse_duration(text: str) -> Duration:
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
    except OverflowError:
        raise InvalidDuration(f"{text!r} is longer than any calendar reaches") from None
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
