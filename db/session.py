"""Engines and sessions for `sqlite:///PATH` and `postgresql://...` URLs.

On SQLite, SQLAlchemy silently drops `FOR UPDATE`, so every transaction starts with `BEGIN IMMEDIATE`: it takes
the database's write lock up front and concurrent writers queue on the busy timeout instead of racing. Sessions
made by `read_sessions` are the exception: they begin a deferred transaction with the connection set to
`query_only`, so readers read their snapshot beside the writer (WAL) and cannot write by mistake (on PostgreSQL
they are READ ONLY transactions). Either way a reading transaction sees one moment from its first query to its
last (on PostgreSQL by REPEATABLE READ, which never fails a transaction that only reads): an answer built from
two queries, say counts and the rows behind them, never holds half of a commit made in between.
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}
SQLITE_BUSY_TIMEOUT_SECONDS = 30
_READ_ONLY = "licensing_read_only"


def _with_driver(url: str, drivers: dict[str, str]) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://...")
    return parsed.set(drivername=drivers[backend])


def async_url(url: str) -> URL:
    return _with_driver(url, _ASYNC_DRIVERS)


def sync_url(url: str) -> URL:
    return _with_driver(url, _SYNC_DRIVERS)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _serialize_sqlite_writers(engine: Any) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()
        # SQLite's own lower() leaves letters beyond ASCII as they are (`Ü`); comparisons "regardless of case" (a
        # SCIM userName) must fold them as Python and PostgreSQL do.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        reading = bool(connection.get_execution_options().get(_READ_ONLY))
        if connection.info.get(_READ_ONLY, False) != reading:  # the pooled connection remembers its last mode
            connection.exec_driver_sql(f"PRAGMA query_only={int(reading)}")  # before BEGIN IMMEDIATE, which writes
            connection.info[_READ_ONLY] = reading
        connection.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # A failed statement's error names its SQL but not its values: learners' and managers' addresses and names, an
    # email's text. A worker's activity failure is kept in its workflow's history and shown in the Web UI.
    kwargs.setdefault("hide_parameters", True)
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        engine = create_async_engine(target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}, **kwargs)
        _serialize_sqlite_writers(engine.sync_engine)
        return engine
    return create_async_engine(target, pool_pre_ping=True, **kwargs)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions on the same engine for requests that only read (see the module's docstring)."""
    engine = sessions.kw["bind"]
    assert isinstance(engine, AsyncEngine)
    options: dict[str, Any] = {_READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options |= {"postgresql_readonly": True, "isolation_level": "REPEATABLE READ"}
    return async_sessionmaker(engine.execution_options(**options), expire_on_commit=False)
