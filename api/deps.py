"""FastAPI dependencies: the database session, the caller, the Temporal client and the settings."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.auth import Principal
from api.errors import ServiceUnavailable, Unauthorized
from db.directory import caller_by_token
from licensing.config import Settings


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


def _read_sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.read_sessions
    return sessions


_READING = frozenset({"GET", "HEAD"})


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A GET reads beside the writers (on SQLite it takes no write lock, and may not write); others may write."""
    sessions = _read_sessions(request) if request.method in _READING else _sessions(request)
    async with sessions() as session:
        yield session


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _temporal(request: Request) -> Client:
    client: Client | None = request.app.state.temporal
    if client is None:
        raise ServiceUnavailable("the workflow service is not connected yet; try again shortly")
    return client


# The 401s of a caller the API does not know, for the routes and for a keyed request's replay (api/idempotency.py).
NO_BEARER_TOKEN = "send 'Authorization: Bearer TOKEN' with the token you were given"
INVALID_TOKEN = "this token is not valid; ask your operator or partner for a new one"

_bearer = HTTPBearer(auto_error=False, description="The token printed when the user was created.")


async def _caller(session: AsyncSession, token: str) -> Principal:
    found = await caller_by_token(session, token)
    if found is None:
        raise Unauthorized(INVALID_TOKEN)
    user, partner_id = found
    return Principal.of(user, partner_id)


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized(NO_BEARER_TOKEN)
    return credentials.credentials


async def check_still_opens(sessions: async_sessionmaker[AsyncSession], authorization: str) -> None:
    """Raise the routes' Unauthorized unless `authorization` (the header) carries a token that opens the API now:
    for a kept answer, which must not outlive its caller's access (removed, or its token replaced)."""
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(NO_BEARER_TOKEN)
    async with sessions() as session:
        await _caller(session, token)


async def _principal(
    request: Request,
    session: Annotated[AsyncSession, Depends(_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    token = _token(credentials)
    if request.method in _READING:
        principal = await _caller(session, token)
        await session.rollback()  # end the read; the route begins its own
        return principal
    # A request that writes looks its caller up without taking SQLite's write lock.
    async with request.app.state.read_sessions() as reader:
        return await _caller(reader, token)


async def _reader(request: Request) -> AsyncIterator[AsyncSession]:
    """One read session for the caller's lookup and the route's own reads, in one transaction: for a POST that
    reads here and lets a workflow write. The route ends the read (`close()`) before it waits for the workflow."""
    async with request.app.state.read_sessions() as session:
        yield session


async def _principal_reading(
    reader: Annotated[AsyncSession, Depends(_reader)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return await _caller(reader, _token(credentials))


SessionDep = Annotated[AsyncSession, Depends(_session)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
# Sessions that only read (see db.session.read_sessions): beside the writers, never queued behind them.
ReadSessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_read_sessions)]
CurrentUser = Annotated[Principal, Depends(_principal)]
# For routes that read and then hand the write to a workflow: the caller and the route read in one transaction.
ReaderDep = Annotated[AsyncSession, Depends(_reader)]
ReadingCaller = Annotated[Principal, Depends(_principal_reading)]
TemporalDep = Annotated[Client, Depends(_temporal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
