"""Column types that behave the same on SQLite and PostgreSQL."""

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Dialect, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant. SQLite keeps no zone, so it is stored as naive UTC and made aware on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are refused: pass an aware UTC instant")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (SQLAlchemy types `execute` as a plain Result)."""
    return cast(CursorResult[Any], result).rowcount


def locks_rows(session: AsyncSession) -> bool:
    """Whether the database locks single rows (PostgreSQL). SQLite's write transaction holds the whole database
    from its start (db/session.py), so a row lock there would only cost a statement."""
    return session.get_bind().dialect.name != "sqlite"
