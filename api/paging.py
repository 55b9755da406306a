"""Keyset paging: `?limit=` (capped) and an opaque `next_cursor` of the last row's (time, id)."""

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVarTuple

from fastapi import Query
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from rules.errors import LicensingError

MAX_LIMIT = 200
Ts = TypeVarTuple("Ts")


class BadCursor(LicensingError):
    type = "BadCursor"


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


def page_request(
    limit: Annotated[int, Query(ge=1, description=f"items per page; more than {MAX_LIMIT} gives {MAX_LIMIT}")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
) -> PageRequest:
    """A page of `limit` items, capped at MAX_LIMIT (asking for more gives a full page, not a refusal)."""
    return PageRequest(limit=min(limit, MAX_LIMIT), cursor=cursor)


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(at, str) or not isinstance(ident, str):  # uuid.UUID(5) is an AttributeError
            raise TypeError("the cursor holds no time and id")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("the cursor's time has no zone")
        return moment.astimezone(UTC), uuid.UUID(ident)
    except (ValueError, TypeError, RecursionError, OverflowError) as problem:
        raise BadCursor("cursor is not one this API gave out; start again without it") from problem


def newest_first(
    query: Select[*Ts],
    page: PageRequest,
    at: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[uuid.UUID],
) -> Select[*Ts]:
    if page.cursor is not None:
        last_at, last_id = _decode(page.cursor)
        query = query.where(or_(at < last_at, and_(at == last_at, ident < last_id)))
    return query.order_by(at.desc(), ident.desc()).limit(page.limit + 1)


def next_cursor(rows: Sequence[Any], page: PageRequest, at: str, ident: str) -> str | None:
    if len(rows) <= page.limit:
        return None
    last = rows[page.limit - 1]
    raw = json.dumps([getattr(last, at).isoformat(), str(getattr(last, ident))])
    return base64.urlsafe_b64encode(raw.encode()).decode()
