"""The architecture holds: workflows stay deterministic, the rules stay pure, the migrations match the models."""

import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from db.migrate import ROOT
from db.models import Base
from db.session import sync_url

FORBIDDEN = ("sqlalchemy", "fastapi", "smtplib", "aiosmtplib", "psycopg", "aiosqlite", "starlette")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", ["workflows.order", "rules.orders", "rules.durations", "payloads.orders"])
def test_workflows_and_rules_import_no_io_libraries(module: str) -> None:
    assert _modules_after_import(module).isdisjoint(FORBIDDEN)


def test_the_rules_import_neither_temporal_nor_pydantic() -> None:
    assert _modules_after_import("rules.orders").isdisjoint({"temporalio", "pydantic"})


def test_the_migrations_create_exactly_the_models(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []
