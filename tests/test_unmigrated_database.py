"""An API started on a database that was never migrated (`alembic upgrade head` forgotten on a fresh install), or
migrated only to an older version, says so: /readyz is not ready and names the command, and every request answers
503 naming the migrations, instead of a bare 500 (PostgreSQL) or "the database is unavailable right now; try again
shortly" (SQLite), which no retry cures."""

from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db.migrate import head_revision, upgrade
from db.session import create_engine, create_session_factory
from licensing.config import Settings
from tests.databases import fresh_database


async def _asked(url: str, settings: Settings, dev_server: WorkflowEnvironment) -> tuple[httpx.Response, ...]:
    engine = create_engine(url)
    try:
        app = create_app(
            settings.model_copy(update={"database_url": url}),
            sessions=create_session_factory(engine),
            temporal=dev_server.client,
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            ready = await http.get("/readyz")
            created = await http.post(
                "/api/v1/partners", json={"name": "Northwind"}, headers={"Authorization": "Bearer lic_anything"}
            )
            listed = await http.get("/api/v1/notifications", headers={"Authorization": "Bearer lic_anything"})
        return ready, created, listed
    finally:
        await engine.dispose()


@pytest.mark.parametrize("revision", ["base", "0011"], ids=["never-migrated", "migrated-to-an-older-version"])
async def test_an_unmigrated_database_is_named_with_the_command_that_migrates_it(
    revision: str, tmp_path: Path, settings: Settings, dev_server: WorkflowEnvironment
) -> None:
    with fresh_database(tmp_path, revision) as url:
        ready, created, listed = await _asked(url, settings, dev_server)
        upgrade(url, "head")
        ready_after, _, refused_after = await _asked(url, settings, dev_server)
    assert ready.status_code == 503
    assert f"this version needs {head_revision()}; run: alembic upgrade head" in ready.json()["detail"]
    if revision == "base":  # every table missing: even a token cannot be looked up
        for answer in (created, listed):
            assert answer.status_code == 503, answer.text
            assert "alembic upgrade head" in answer.json()["detail"]
    assert ready_after.status_code == 200, ready_after.text
    assert refused_after.status_code == 401  # migrated: the unknown token is refused as usual
