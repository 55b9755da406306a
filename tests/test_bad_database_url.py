"""A LICENSING_DATABASE_URL of a database the service does not support (`postgres://`, as some hosts spell it,
`mysql://`) or no URL at all stops the worker, the API, the CLI and the migrations at start with one line naming
the setting, as a bad duration does, not with a traceback from the engine; the password in it is not repeated."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from licensing.config import Settings

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
COMMANDS = {
    "worker": [sys.executable, "worker.py"],
    "api": [sys.executable, "-c", "import api.main"],
    "cli": [str(BIN / "licensing"), "partners"],
    "migrations": [str(BIN / "alembic"), "upgrade", "head"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_an_unsupported_database_url_stops_with_a_message_naming_it(command: list[str]) -> None:
    env = {
        **os.environ,
        "LICENSING_DATABASE_URL": "postgres://licensing:s3cret@127.0.0.1:1/licensing",
        "LICENSING_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "LICENSING_WORKER_METRICS_ADDRESS": "",
    }
    ran = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr, ran.stderr[-2000:]
    assert "LICENSING_DATABASE_URL: unsupported database 'postgres': use sqlite:///PATH or postgresql://" in (
        ran.stderr
    )
    assert "s3cret" not in ran.stderr


@pytest.mark.parametrize("url", ["mysql://db/licensing", "licensing.db", "sqlite://x:y:z"])
def test_settings_refuse_what_is_not_a_supported_database_url(url: str) -> None:
    with pytest.raises(ValueError, match="use sqlite:///PATH or postgresql://"):
        Settings(database_url=url)


@pytest.mark.parametrize("url", ["sqlite:///var/licensing.db", "postgresql://postgres@127.0.0.1:5432/test"])
def test_settings_take_the_urls_design_names(url: str) -> None:
    assert Settings(database_url=url).database_url == url
