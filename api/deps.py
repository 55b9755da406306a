"""FastAPI dependencies: the database session, the caller, the Temporal client and the settings."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.auth import Principal
from api.errors import ServiceUnavailable, Unauthorized
from db.directory import user_by_token
from db.models import Customer
from licensing.config import Settings


def _sessions(request: Request) -> async_sessionmaker[AsyncSession]:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    return sessions


_READING = frozenset({"GET", "HEAD"})


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """A GET reads beside the writers (on SQLite it takes no write lock, and may not write); others may write."""
    sessions = request.app.state.read_sessions if request.method in _READING else _sessions(request)
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


_bearer = HTTPBearer(auto_error=False, description="The token printed when the user was created.")


async def _principal(
    session: Annotated[AsyncSession, Depends(_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("send 'Authorization: Bearer TOKEN' with the token you were given")
    user = await user_by_token(session, credentials.credentials)
    if user is None:
        raise Unauthorized("this token is not valid; ask your operator or partner for a new one")
    partner_id = None
    if user.customer_id is not None:
        partner_id = (
            await session.execute(select(Customer.partner_id).where(Customer.id == user.customer_id))
        ).scalar()
    principal = Principal.of(user, partner_id)
    await session.rollback()  # release SQLite's lock before the route's own transaction
    return principal


SessionDep = Annotated[AsyncSession, Depends(_session)]
SessionsDep = Annotated[async_sessionmaker[AsyncSession], Depends(_sessions)]
CurrentUser = Annotated[Principal, Depends(_principal)]
TemporalDep = Annotated[Client, Depends(_temporal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
