"""A licence term parses the renewal reminder offsets its input captured without the 1000-year limit, as an
order does: a term started with an offset of P1001Y (accepted before the limit) still runs under today's worker."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from db.models import Customer, LicenceBlock
from licensing.config import Settings
from licensing.temporal import build_worker
from licensing.terms import start_block_term
from tests import factories
from tests.factories import Tenant
from workflows.block import block_workflow_id


async def test_a_term_started_with_a_1001_year_reminder_offset_still_runs(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    settings.renewal_reminders = "P30D,P1001Y"  # what the term's input captured before the limit (accepted then)
    await factories.block(sessions, tenant, quantity=1, days=60)
    block_id = await factories.block_id(sessions, tenant)
    async with sessions() as session:
        customer = await session.get_one(Customer, tenant.customer_id)
        block = await session.get_one(LicenceBlock, block_id)
    handle = dev_server.client.get_workflow_handle(block_workflow_id(block_id))
    try:
        async with build_worker(dev_server.client, settings, sessions):
            await start_block_term(dev_server.client, settings, customer, block)
            await asyncio.sleep(3)
            events = [e async for e in handle.fetch_history_events()]
    finally:
        await handle.terminate("test over")
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    assert failed == [], failed[0].workflow_task_failed_event_attributes.failure.message
