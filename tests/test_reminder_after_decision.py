"""An order's reminder whose activity runs late (retried through a database outage, a slow worker) must
not tell the partner's managers that an order assigned meanwhile is still waiting for them. The reminder's
activity is held here until the assignment has committed, as a retry after an outage would be. Time-skipping
server: run serially."""

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from db.models import OutboxEmail
from licensing.config import Settings
from licensing.temporal import WORKFLOWS, activities
from payloads.orders import NoticeResult, OrderEvent, OrderNotice
from tests import factories
from tests.ordering import Orders, end_term, order_id


async def test_a_late_reminder_is_not_sent_for_an_order_assigned_meanwhile(
    time_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
) -> None:
    settings = settings.model_copy(update={"order_reminder_after": "PT2S"})
    reminding, assigned = asyncio.Event(), asyncio.Event()
    made = activities(settings, sessions, time_server.client)
    real = {activity._Definition.must_from_callable(a).name: a for a in made}

    @activity.defn(name="notify_order_event")
    async def late_notify(data: OrderNotice) -> NoticeResult:
        if data.event is OrderEvent.REMINDER and not assigned.is_set():
            reminding.set()
            await assigned.wait()  # the attempt that finally gets through, after the assignment
        result: NoticeResult = await real["notify_order_event"](data)
        return result

    acts = [a for name, a in real.items() if name != "notify_order_event"] + [late_notify]
    orders = Orders(time_server, settings)
    async with Worker(time_server.client, task_queue=settings.task_queue, workflows=list(WORKFLOWS), activities=acts):
        handle = await orders.request(tenant, 2)
        await asyncio.wait_for(reminding.wait(), 30)  # PT2S: the clock runs in real time, no skipping needed
        outcome = await orders.assign(handle, tenant)
        assigned.set()
        await handle.result()
        assert outcome.block_id is not None
        await end_term(time_server, outcome.block_id)
    async with sessions() as session:
        keys = (
            await session.execute(select(OutboxEmail.key).where(OutboxEmail.key.like(f"order-{order_id(handle)}:%")))
        ).scalars()
        reminders = [k for k in keys if ":reminder-" in k]
    assert reminders == [], reminders
