"""Alembic environment: migrates the database named by LICENSING_DATABASE_URL (or an explicit URL)."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

from db.migrate import prepare_sqlite_path
from db.models import Base
from db.session import sync_url
from licensing.config import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

url = config.attributes.get("database_url") or get_settings().database_url
prepare_sqlite_path(url)
engine = create_engine(sync_url(url))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
