"""Keyset paging: `?limit=` (capped) and an opaque `next_cursor` of the last row's (time, id), bound to the list
and the filters it was given for."""

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVarTuple

from fastapi import Query, Request
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
    # The list and its filters (path and query but `limit` and `cursor`): a cursor is good for these only.
    scope: str = ""


def page_request(
    request: Request,
    limit: Annotated[int, Query(ge=1, description=f"items per page; more than {MAX_LIMIT} gives {MAX_LIMIT}")] = 50,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="next_cursor of the previous page, with the same path and filters"),
    ] = None,
) -> PageRequest:
    """A page of `limit` items, capped at MAX_LIMIT (asking for more gives a full page, not a refusal)."""
    return PageRequest(limit=min(limit, MAX_LIMIT), cursor=cursor, scope=_scope(request))


def _scope(request: Request) -> str:
    asked = sorted((k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "cursor"))
    return hashlib.sha256(json.dumps([request.url.path, asked]).encode()).hexdigest()[:16]


def _decode(cursor: str, scope: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, ident, *bound = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(at, str) or not isinstance(ident, str):  # uuid.UUID(5) is an AttributeError
            raise TypeError("the cursor holds no time and id")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("the cursor's time has no zone")
        last = moment.astimezone(UTC), uuid.UUID(ident)
    except (ValueError, TypeError, RecursionError, OverflowError) as problem:
        raise BadCursor("cursor is not one this API gave out; start again without it") from problem
    # A cursor given out before cursors were bound has no scope: it is taken as it always was.
    if bound and bound != [scope]:
        raise BadCursor(
            "cursor belongs to another list or other filters: send it with the path and filters of the page that "
            "gave it, or start again without it"
        )
    return last


def newest_first(
    query: Select[*Ts],
    page: PageRequest,
    at: InstrumentedAttribute[datetime],
    ident: InstrumentedAttribute[uuid.UUID],
) -> Select[*Ts]:
    if page.cursor is not None:
        last_at, last_id = _decode(page.cursor, page.scope)
        query = query.where(or_(at < last_at, and_(at == last_at, ident < last_id)))
    return query.order_by(at.desc(), ident.desc()).limit(page.limit + 1)


def next_cursor(rows: Sequence[Any], page: PageRequest, at: str, ident: str) -> str | None:
    if len(rows) <= page.limit:
        return None
    last = rows[page.limit - 1]
    raw = json.dumps([getattr(last, at).isoformat(), str(getattr(last, ident)), page.scope])
    return base64.urlsafe_b64encode(raw.encode()).decode()
