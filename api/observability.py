"""What operators watch: /healthz (the process is up), /readyz (the database and Temporal answer), /metrics
(Prometheus: HTTP requests by route and status, and their latency), and a request id on every answer and log line."""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from db.migrate import head_revision, known_revisions
from licensing.logs import request_id
from licensing.temporal import (
    missing_search_attributes,
    namespace_command,
    namespace_missing,
    search_attributes_command,
)

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "licensing_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "licensing_http_request_seconds", "Time to answer an HTTP request", ["method", "route"], registry=REGISTRY
)
CHECK_SECONDS = 3.0
log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _database(request: Request) -> str | None:
    try:
        async with asyncio.timeout(CHECK_SECONDS), request.app.state.read_sessions() as session:
            await session.execute(text("SELECT 1"))
        if getattr(request.app.state, "schema_at_head", False):
            return None
        async with asyncio.timeout(CHECK_SECONDS), request.app.state.read_sessions() as session:
            return await _schema(request.app, session)
    except Exception as problem:
        return _not_answering("database", problem)


async def _schema(app: FastAPI, session: AsyncSession) -> str | None:
    """Not ready on a database that was never migrated, or only to an older version: every request would fail.
    A revision this code does not know is a newer one (migrated ahead of a rolling upgrade): that stays ready."""
    try:
        found = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    except DBAPIError:
        found = []
    head = head_revision()
    if head in found or (found and not set(found) <= known_revisions()):
        app.state.schema_at_head = True
        return None
    at = f"at revision {', '.join(found)}" if found else "not migrated"
    return f"database: {at}, this version needs {head}; run: alembic upgrade head"


async def _temporal(request: Request) -> str | None:
    client = request.app.state.temporal
    if client is None:
        return "temporal: not connected"
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await client.service_client.check_health()
            return await _search_attributes(request.app, client)
    except Exception as problem:
        return _not_answering("temporal", problem)


async def _search_attributes(app: FastAPI, client: Client) -> str | None:
    """Without our search attributes every workflow start is refused (a trial customer, an order, an import): not
    ready. Once all are there they stay, so they are asked for only until then."""
    if getattr(app.state, "search_attributes_found", False):
        return None
    namespace = app.state.settings.temporal_namespace
    try:
        missing = await missing_search_attributes(client, namespace)
    except RPCError as error:
        if namespace_missing(error):
            return f"temporal: the namespace {namespace} does not exist; create it with: {namespace_command(namespace)}"
        raise
    if missing:
        return (
            f"temporal: the namespace {namespace} lacks the search attributes {', '.join(missing)}; start the "
            f"worker, which registers them, or run: {search_attributes_command(namespace)}"
        )
    app.state.search_attributes_found = True
    return None


def _not_answering(part: str, problem: Exception) -> str:
    """What /readyz shows anyone who asks (no host names, addresses or user names from the error's text); the
    whole error goes to the log, under the request's id."""
    log.warning("readiness: %s is not answering: %s: %s", part, type(problem).__name__, problem)
    kind = f"no answer within {CHECK_SECONDS:g} s" if isinstance(problem, TimeoutError) else type(problem).__name__
    return f"{part}: not answering ({kind}; the API's log has the details)"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database and Temporal both answer, and Temporal's namespace has our search attributes; 503
    naming what is missing."""
    problems = [p for p in await asyncio.gather(_database(request), _temporal(request)) if p]
    if problems:
        return JSONResponse({"status": "unavailable", "detail": "; ".join(problems)}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        given = request.headers.get("x-request-id", "")
        token = request_id.set(given[:100] if given else uuid.uuid4().hex)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")
            LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        response.headers["X-Request-ID"] = request_id.get() or ""
        request_id.reset(token)
        return response

    app.include_router(router)
