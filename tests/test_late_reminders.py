"""Reminders whose time came while no worker ran: an order sends one reminder, not one for each that fell due; a
licence term sends no renewal reminder for a block that expired meanwhile, and only the last of several that fell
due. The order's outage is real (its worker stopped on the dev server, in seconds); a term's is its workflow
starting after its reminders' times, which it cannot tell from a worker that was down."""

import asyncio
import re
import time
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from licensing.config import Settings
from licensing.temporal import build_worker
from tests import factories
from tests.ordering import Orders
from tests.smtp_server import SmtpServer
from tests.test_api_orders import eventually
from tests.test_block_workflow import _subjects, _term, _to_the_end


def _reminder_numbers(smtp: SmtpServer, tenant: factories.Tenant) -> list[int]:
    """The numbers of the order reminders the partner's manager received, in the order they came."""
    bodies = [
        str(m.get_body(("plain",)).get_content())  # type: ignore[union-attr]
        for m in smtp.inbox.to(tenant.partner_manager.email)
        if "Reminder" in str(m["Subject"])
    ]
    return [int(n) for body in bodies for n in re.findall(r"\(reminder (\d+)\)", body)]


async def test_an_order_sends_one_reminder_for_those_that_fell_due_while_no_worker_ran(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    smtp: SmtpServer,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    orders = Orders(dev_server, settings.model_copy(update={"order_reminder_after": "PT4S"}))
    async with build_worker(dev_server.client, orders.settings, sessions):
        handle = await orders.request(tenant, 5)
    requested = time.monotonic()
    assert _reminder_numbers(smtp, tenant) == []
    # Reminders every 4 seconds: at least three fall due while no worker runs.
    await asyncio.sleep(13 - (time.monotonic() - requested))
    async with build_worker(dev_server.client, orders.settings, sessions):
        await eventually(lambda: _reminder_numbers(smtp, tenant))
        await eventually(lambda: len(_reminder_numbers(smtp, tenant)) >= 2)  # then on the usual interval
        await orders.cancel(handle, tenant)
        await handle.result()
    numbers = _reminder_numbers(smtp, tenant)
    assert numbers[0] >= 3, numbers  # the first after the outage is numbered as the last that fell due
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers  # none twice, none passed over


async def test_a_term_sends_only_the_last_of_the_renewal_reminders_that_fell_due(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    # The 30- and 7-day reminders both fell due before the term ran; the block expires in a day.
    now = await orders.env.get_current_time()
    handle, block = await _term(orders, sessions, tenant, starts_at=now - timedelta(days=364))
    await _to_the_end(orders, handle, block)
    subjects = _subjects(smtp, tenant)
    assert [" expire on " in s for s in subjects] == [True, False], subjects  # one reminder, then the summary


async def test_a_term_that_runs_after_its_expiry_sends_no_renewal_reminder(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    now = await orders.env.get_current_time()
    handle, block = await _term(orders, sessions, tenant, starts_at=now - timedelta(days=400))
    expired = await handle.result()
    assert expired.block_id == block.id
    subjects = _subjects(smtp, tenant)
    assert [" have expired" in s for s in subjects] == [True], subjects  # the summary alone
