"""A licence term keeps its promise across restarts: the dev server (with its file persistence) is stopped before
a block's expiry instant and started after it, and the worker is replaced; the block expires once."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from licensing.config import Settings
from licensing.temporal import build_worker
from licensing.terms import start_licence_term
from payloads.blocks import BlockExpired, LicenceBlockInput
from tests import factories
from tests.conftest import installed_binary
from tests.smtp_server import SmtpServer
from workflows.block import block_workflow_id
from workflows.search import ALL_KEYS


async def _dev_server(state: Path) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        dev_server_database_filename=str(state),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )


async def test_a_block_expires_once_across_a_server_and_worker_restart(
    tmp_path: Path,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    first = await _dev_server(tmp_path / "temporal.db")
    block = await factories.short_block_with_a_learner(sessions, tenant, seconds=5)
    term = LicenceBlockInput(
        block_id=block.id,
        partner_id=tenant.partner_id,
        customer_id=tenant.customer_id,
        kind="premium",
        quantity=2,
        starts_at=block.starts_at,
        expires_at=block.expires_at,
        renewal_reminders=[],
    )
    async with build_worker(first.client, settings, sessions):
        await start_licence_term(first.client, settings.task_queue, term)
    await first.shutdown()
    stopped_at = datetime.now(UTC)
    # The server stays down across the expiry instant: this test is about wall-clock time passing.
    await asyncio.sleep((block.expires_at + timedelta(seconds=1) - datetime.now(UTC)).total_seconds())
    second = await _dev_server(tmp_path / "temporal.db")
    try:
        async with build_worker(second.client, settings, sessions):
            handle = second.client.get_workflow_handle(block_workflow_id(block.id), result_type=BlockExpired)
            expired: BlockExpired = await handle.result()
    finally:
        await second.shutdown()
    summaries = [m for m in smtp.inbox.messages if "have expired" in str(m["Subject"])]
    assert stopped_at < block.expires_at
    assert (expired.expired_at, expired.licences_expired, expired.learners_expired, len(summaries)) == (
        block.expires_at,
        2,
        1,
        2,
    )
