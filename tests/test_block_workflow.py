"""The licence-term workflow on the time-skipping test server: reminders, expiry at the exact instant, the
summary, early expiry. Real activities, database and SMTP server."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError

from db import blocks, learners
from db.models import Customer, Learner, LicenceBlock
from licensing.terms import start_block_term
from payloads.blocks import BlockExpired, ExpireNow
from payloads.common import SYSTEM
from rules.licences import BlockKind, LearnerSource, term_end
from tests import factories
from tests.ordering import Orders
from tests.smtp_server import SmtpServer
from workflows.block import LicenceBlockWorkflow, block_workflow_id

Term = WorkflowHandle[LicenceBlockWorkflow, BlockExpired]


async def _term(
    orders: Orders,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
    *,
    starts_at: datetime,
    term: str = "P12M",
    learners_to_add: int = 1,
) -> tuple[Term, LicenceBlock]:
    """A block of 3 licences from `starts_at`, a learner holding one, and its term workflow running."""
    async with sessions.begin() as session:
        block = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=3,
            starts_at=starts_at,
            expires_at=term_end(starts_at, term),
        )
        for n in range(learners_to_add):
            await learners.add_learner(
                session,
                customer_id=tenant.customer_id,
                email=f"l{n}-{uuid.uuid4().hex[:6]}@example.com",
                name="Lee",
                source=LearnerSource.MANUAL,
                actor=SYSTEM,
                now=starts_at,
            )
    await _start(orders, sessions, block)
    handle = orders.env.client.get_workflow_handle_for(LicenceBlockWorkflow.run, block_workflow_id(block.id))
    return handle, block


def _next(env_now: datetime, month: int, day: int) -> datetime:
    """The next `day` of `month` (09:00 UTC) after the test server's clock, e.g. the next 29 February."""
    year = env_now.year
    while True:
        try:
            candidate = datetime(year, month, day, 9, tzinfo=UTC)
        except ValueError:
            year += 1
            continue
        if candidate > env_now:
            return candidate
        year += 1


def _subjects(smtp: SmtpServer, tenant: factories.Tenant) -> list[str]:
    return [str(m["Subject"]) for m in smtp.inbox.to(tenant.customer_manager.email)]


async def _start(orders: Orders, sessions: async_sessionmaker[AsyncSession], block: LicenceBlock) -> None:
    async with sessions() as session:
        customer = await session.get_one(Customer, block.customer_id)
    await start_block_term(orders.env.client, orders.settings, customer, block)


async def _to_the_end(orders: Orders, handle: Term, block: LicenceBlock) -> BlockExpired:
    """Skip the shared clock past the expiry instant, then read the outcome."""
    await orders.env.sleep(block.expires_at + timedelta(minutes=1) - await orders.env.get_current_time())
    return await handle.result()


async def _block(sessions: async_sessionmaker[AsyncSession], block_id: uuid.UUID) -> LicenceBlock:
    async with sessions() as session:
        return await session.get_one(LicenceBlock, block_id)


async def test_a_full_term_reminds_at_30_and_7_days_then_expires_at_the_instant(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    start = await orders.env.get_current_time()
    handle, block = await _term(orders, sessions, tenant, starts_at=start)
    seen = []
    for moment in (timedelta(days=31), timedelta(days=29), timedelta(days=6), timedelta(seconds=1)):
        await orders.env.sleep(block.expires_at - moment - await orders.env.get_current_time())
        seen.append((len(_subjects(smtp, tenant)), (await _block(sessions, block.id)).status))
    expired = await _to_the_end(orders, handle, block)
    assert seen == [(0, "active"), (1, "active"), (2, "active"), (2, "active")]
    assert (expired.expired_at, expired.licences_expired, expired.learners_expired) == (block.expires_at, 3, 1)
    assert [s.split(" ")[-1] for s in _subjects(smtp, tenant)][-1] == "expired"


async def test_reminders_and_summary_reach_both_sides(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    handle, block = await _term(orders, sessions, tenant, starts_at=await orders.env.get_current_time())
    await _to_the_end(orders, handle, block)
    sides = [len(smtp.inbox.to(p.email)) for p in (tenant.customer_manager, tenant.partner_manager)]
    assert sides == [3, 3]


async def test_expiry_marks_the_learners_expired(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    handle, block = await _term(
        orders, sessions, tenant, starts_at=await orders.env.get_current_time(), learners_to_add=2
    )
    await _to_the_end(orders, handle, block)
    async with sessions() as session:
        query = select(Learner.licence_status).where(Learner.customer_id == tenant.customer_id)
        statuses = sorted((await session.execute(query)).scalars())
    assert statuses == ["expired", "expired"]
    ends = block.expires_at, block.expires_at, {block.expires_at}  # the term's end stands
    assert await _ends(sessions, tenant, block.id) == ends


async def _ends(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, block_id: uuid.UUID
) -> tuple[datetime, datetime | None, set[datetime | None]]:
    """The block's term end, when it expired, and its (former) holders' licence ends."""
    async with sessions() as session:
        block = await session.get_one(LicenceBlock, block_id)
        learners = select(Learner.licence_expires_at).where(Learner.customer_id == tenant.customer_id)
        return block.expires_at, block.expired_at, set((await session.execute(learners)).scalars())


@pytest.mark.parametrize(
    ("month", "day", "expected"),
    [(2, 29, (2, 28)), (1, 31, (1, 31))],
    ids=["assigned on 29 February", "assigned on 31 January"],
)
async def test_a_term_runs_twelve_calendar_months(
    orders: Orders,
    sessions: async_sessionmaker[AsyncSession],
    tenant: factories.Tenant,
    month: int,
    day: int,
    expected: tuple[int, int],
) -> None:
    start = _next(await orders.env.get_current_time(), month, day)
    await orders.env.sleep(start - await orders.env.get_current_time())
    handle, block = await _term(orders, sessions, tenant, starts_at=start)
    expired = await _to_the_end(orders, handle, block)
    assert (
        expired.expired_at.year - start.year,
        expired.expired_at.month,
        expired.expired_at.day,
        expired.expired_at.hour,
    ) == (1, *expected, 9)


async def test_early_expiry_ends_the_term_now(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    handle, block = await _term(
        orders, sessions, tenant, starts_at=await orders.env.get_current_time(), learners_to_add=2
    )
    expired = await handle.execute_update(LicenceBlockWorkflow.expire_now, ExpireNow(actor=SYSTEM))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(LicenceBlockWorkflow.expire_now, ExpireNow(actor=SYSTEM))
    await handle.result()
    assert (expired.expired_at < block.expires_at, expired.licences_expired) == (True, 3)
    # Its learners' licences say when they really ended; the block keeps its term's end beside it.
    assert await _ends(sessions, tenant, block.id) == (block.expires_at, expired.expired_at, {expired.expired_at})
    assert any("early" in m.get_body(("plain",)).get_content() for m in smtp.inbox.to(tenant.customer_manager.email))  # type: ignore[union-attr]


async def test_starting_a_term_twice_runs_one_workflow(
    orders: Orders, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    handle, block = await _term(orders, sessions, tenant, starts_at=await orders.env.get_current_time())
    first = (await handle.describe()).run_id
    await _start(orders, sessions, block)
    assert (await handle.describe()).run_id == first
    await _to_the_end(orders, handle, block)


async def test_a_reminder_whose_emails_the_relay_keeps_refusing_does_not_hold_back_the_expiry(
    orders: Orders, smtp: SmtpServer, sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant
) -> None:
    # A reminder 10 minutes before the end; the relay refuses its two emails for about an hour of retries.
    orders.settings = orders.settings.model_copy(update={"renewal_reminders": "PT10M"})
    handle, block = await _term(orders, sessions, tenant, starts_at=await orders.env.get_current_time(), term="PT2H")
    await orders.env.sleep(block.expires_at - timedelta(minutes=11) - await orders.env.get_current_time())
    smtp.inbox.refusals.extend(["421 4.3.2 try again later"] * 12)
    await orders.env.sleep(block.expires_at + timedelta(minutes=1) - await orders.env.get_current_time())
    expired_in_time = (await _block(sessions, block.id)).status
    await orders.env.sleep(timedelta(hours=2))  # past the reminder's retries
    await handle.result()
    assert expired_in_time == "expired"
    assert len(_subjects(smtp, tenant)) == 2  # the reminder (late) and the summary, each once
