"""The FastAPI application: `uvicorn api.main:app`. OpenAPI at /docs."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api import errors, idempotency, observability
from api.clock import now
from api.limits import BodyLimit
from api.routes import activity, customers, imports, learners, orders, partners, reports, scim_tokens, users
from api.schemas import Problem
from api.scim import errors as scim_errors
from api.scim import routes as scim_routes
from api.scim.errors import ScimError
from db.session import create_engine, create_session_factory, read_sessions
from licensing.config import Settings, get_settings
from licensing.logs import configure as configure_logs
from licensing.temporal import connect
from rules.licences import term_end

log = logging.getLogger(__name__)


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem} for status in (400, 401, 403, 404, 409, 413, 422, 503)
}


def _routes() -> APIRouter:
    v1 = APIRouter(prefix="/api/v1", responses=PROBLEMS)
    for module in (partners, users, customers, orders, learners, imports, reports, scim_tokens, activity):
        v1.include_router(module.router)
    return v1


def _body_cap(settings: Settings, content_type: str) -> int:
    if content_type.startswith("multipart/form-data"):
        return settings.import_max_bytes + 64 * 1024  # the CSV itself is capped again, exactly, by the route
    return settings.max_json_bytes


def _document_idempotency(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = idempotency.document(
                get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


FIRST_CONNECT_SECONDS = 10  # the longest the API's start waits for its first try to connect to Temporal
RECONNECT_SECONDS = 2


async def _connect_when_reachable(app: FastAPI, settings: Settings, first_try: asyncio.Event) -> None:
    """Connect to Temporal, trying again until it answers; meanwhile what needs it answers 503 and /readyz names it.
    `first_try` is set once the first try has succeeded or failed."""
    while True:
        try:
            app.state.temporal = await connect(settings)
        except RuntimeError as problem:  # the SDK's error for a server it cannot reach; a bad setting stops the API
            first_try.set()
            log.warning(
                "Temporal at %s is not reachable (%s); serving reads from the database and trying again in %d s",
                settings.temporal_address,
                problem,
                RECONNECT_SECONDS,
            )
            await asyncio.sleep(RECONNECT_SECONDS)
        else:
            log.info("connected to Temporal at %s", settings.temporal_address)
            first_try.set()
            return


def _warn_of_a_trial_longer_than_a_licence(settings: Settings) -> None:
    started = now()
    if term_end(started, settings.trial_term) > term_end(started, settings.licence_term):
        log.warning(
            "LICENSING_TRIAL_TERM (%s) is longer than LICENSING_LICENCE_TERM (%s): trials get the licence term; "
            "set LICENSING_TRIAL_TERM shorter",
            settings.trial_term,
            settings.licence_term,
        )


def create_app(
    settings: Settings | None = None,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    temporal: Client | None = None,
) -> FastAPI:
    """Build the app. Tests pass their own sessions and Temporal client; otherwise they come from settings."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = None
        if sessions is None:
            engine = create_engine(settings.database_url)
            app.state.sessions = create_session_factory(engine)
            app.state.read_sessions = read_sessions(app.state.sessions)
        connecting = None
        if temporal is None:
            configure_logs()
            _warn_of_a_trial_longer_than_a_licence(settings)
            # Reads come from the database: the API serves them while Temporal is away, and connects when it can.
            first_try = asyncio.Event()
            connecting = asyncio.create_task(_connect_when_reachable(app, settings, first_try))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(first_try.wait(), FIRST_CONNECT_SECONDS)
        try:
            yield
        finally:
            if connecting is not None:
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="Partner Licensing",
        version="1",
        summary="Partners sell and run e-learning licences for the companies they look after.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sessions = sessions
    app.state.read_sessions = read_sessions(sessions) if sessions is not None else None
    app.state.temporal = temporal
    errors.install(app)
    observability.install(app)
    app.add_middleware(idempotency.Idempotency)
    app.add_middleware(BodyLimit, limit_for=lambda content_type: _body_cap(settings, content_type))
    _document_idempotency(app)
    app.add_exception_handler(ScimError, scim_errors.handle)
    app.include_router(_routes())
    app.include_router(scim_routes.router)
    return app


app = create_app()
