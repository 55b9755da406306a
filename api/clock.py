"""The API is where the wall clock is read; everything below takes `now` as an argument."""

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
