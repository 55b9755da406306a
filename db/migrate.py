"""Run the Alembic migrations from code (the dev command and the tests use this)."""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

# PostgreSQL's undefined_table and undefined_column; SQLite says it in words.
_SCHEMA_MISSING_SQLSTATES = {"42P01", "42703"}
_SCHEMA_MISSING_SQLITE = ("no such table", "no such column")

ROOT = Path(__file__).resolve().parent.parent


def prepare_sqlite_path(url: str) -> None:
    """SQLite creates the file but not its folder (`var/` on a fresh clone)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    return config


def upgrade_to_head(url: str) -> None:
    upgrade(url, "head")


def upgrade(url: str, revision: str) -> None:
    command.upgrade(_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(_config(url), revision)


@cache
def head_revision() -> str:
    """The revision this code's migrations end at."""
    head = ScriptDirectory.from_config(_config("sqlite://")).get_current_head()
    assert head is not None
    return head


@cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in ScriptDirectory.from_config(_config("sqlite://")).walk_revisions())


def schema_missing(error: DBAPIError) -> bool:
    """The database lacks a table or column this code uses: it was never migrated, or not to this version."""
    if getattr(error.orig, "sqlstate", None) in _SCHEMA_MISSING_SQLSTATES:
        return True
    return str(error.orig).lower().startswith(_SCHEMA_MISSING_SQLITE)


NOT_MIGRATED = (
    "the database is not set up for this version of the service (its tables are missing or out of date); an "
    "operator runs the migrations: alembic upgrade head"
)
