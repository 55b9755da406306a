"""The test database: a fresh SQLite file, or a fresh PostgreSQL database when LICENSING_TEST_DATABASE=postgresql
(made on the server named by LICENSING_TEST_DATABASE_URL and dropped afterwards). Migrated to head, or to the
revision given."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from db.migrate import upgrade


def backend() -> str:
    return os.environ.get("LICENSING_TEST_DATABASE", "sqlite")


@contextmanager
def fresh_database(tmp: Path, revision: str = "head") -> Iterator[str]:
    if backend() != "postgresql":
        url = f"sqlite:///{tmp / 'licensing.db'}"
        upgrade(url, revision)
        yield url
        return
    server = make_url(os.environ["LICENSING_TEST_DATABASE_URL"])
    name = f"licensing_test_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, revision)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
