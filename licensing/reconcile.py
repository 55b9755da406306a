"""Repair what a write cut in two left behind: the database committed (a trial block, a CSV upload, an upgrade)
but the workflow could not be started or told (Temporal was down, the API stopped); and a waiting order whose
workflow was terminated by hand. Starting terms and imports, starting a waiting order's workflow when none runs
and expiring an upgraded customer's trial are idempotent, so this is safe to run at every worker start and by
hand (`licensing reconcile`)."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.blocks import expire_block, upgraded_trial
from db.models import Customer, LearnerImport, LicenceBlock, LicenceOrder, User
from licensing.config import Settings
from licensing.imports import start_import
from licensing.orders import order_workflow_id, resume_order
from licensing.runs import latest_status, running_ids
from licensing.terms import start_block_term
from payloads.blocks import ExpireBlock
from payloads.common import SYSTEM, Actor, Role
from rules.orders import OrderStatus
from workflows.block import block_workflow_id

log = logging.getLogger(__name__)
_Answer = TypeVar("_Answer")
# Workflows looked up at once (one request to the server each).
AT_ONCE = 20


@dataclass(frozen=True)
class Reconciled:
    terms: int
    imports: int
    trials_ended: int = 0
    orders: int = 0  # waiting orders checked
    orders_resumed: int = 0  # of them, found without a running workflow and started again
    terms_started_again: int = 0  # running blocks whose term workflow had ended (terminated by hand)
    terms_started: int = 0  # running blocks found without any term workflow, and given one
    imports_started: int = 0  # running imports found without their workflow, and given one

    @property
    def repaired_anything(self) -> bool:
        return bool(
            self.trials_ended
            or self.orders_resumed
            or self.terms_started_again
            or self.terms_started
            or self.imports_started
        )


async def _end_upgraded_trials(sessions: async_sessionmaker[AsyncSession], at: datetime) -> int:
    """Trial blocks still running for a customer already premium: the upgrade committed, but its request to end
    them never reached their workflows. They expire now, in the database (no worker may be running yet to
    answer their workflow); each workflow sends no renewal reminder for an expired block, and finds it expired
    when its own timer ends it (the expiry summary goes out then)."""
    async with sessions() as session:
        query = (
            select(LicenceBlock.id)
            .join(Customer, Customer.id == LicenceBlock.customer_id)
            .where(LicenceBlock.status == "active", upgraded_trial(LicenceBlock, Customer))
        )
        ending = list((await session.execute(query)).scalars())
    for block_id in ending:
        await expire_block(
            sessions, ExpireBlock(block_id=block_id, at=at, actor=SYSTEM, reason="the customer was upgraded")
        )
    return len(ending)


def uploader(user: User, customer: Customer) -> Actor:
    """Who uploaded a CSV, as they acted then: a partner's manager uploads for a customer in manage mode."""
    role = Role(user.role)
    if role is Role.PARTNER_MANAGER:
        return Actor(user_id=user.id, role=role, manage_mode=True, on_behalf_of_customer_id=customer.id)
    return Actor(user_id=user.id, role=role)


async def _gated(checks: Iterable[Coroutine[Any, Any, _Answer]]) -> list[_Answer]:
    """Run the checks, AT_ONCE at a time; their answers."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def gated(check: Coroutine[Any, Any, _Answer]) -> _Answer:
        async with gate:
            return await check

    return list(await asyncio.gather(*(gated(check) for check in checks)))


class TermRepair(Enum):
    NONE = "none"  # its term runs, or the block has ended
    STARTED = "started"  # no term had ever been started
    STARTED_AGAIN = "started again"  # its term had ended (terminated by hand) while the block runs


async def _ensure_term(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    customer: Customer,
    block: LicenceBlock,
    running: frozenset[str],
) -> TermRepair:
    """Start the term of an active block that has none running (`running`: the terms the server listed as
    running; one not listed is asked for). The block is read again once its term is found ended: a term expires
    its block before it ends, so a block still active then was left without one."""
    if block_workflow_id(block.id) in running:
        return TermRepair.NONE
    state = await latest_status(client, block_workflow_id(block.id))
    if state is WorkflowExecutionStatus.RUNNING:
        return TermRepair.NONE
    async with sessions() as session:  # read again: it may have expired since the round read it (an upgrade)
        status = await session.scalar(select(LicenceBlock.status).where(LicenceBlock.id == block.id))
    if status != "active":
        return TermRepair.NONE
    if state is None:
        await start_block_term(client, settings, customer, block)
        return TermRepair.STARTED
    await start_block_term(client, settings, customer, block, again=True)
    return TermRepair.STARTED_AGAIN


async def _resume_waiting_orders(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], at: datetime, *, trust_listing: bool
) -> tuple[int, int]:
    """Every requested order has a running workflow to decide it: one terminated by hand is started again."""
    async with sessions() as session:
        query = select(LicenceOrder.id).where(LicenceOrder.status == OrderStatus.REQUESTED.value)
        waiting = list((await session.execute(query)).scalars())
    running = await running_ids(client, "LicenceOrderWorkflow") if waiting and trust_listing else frozenset()
    unlisted = [order_id for order_id in waiting if order_workflow_id(order_id) not in running]
    resumed = await _gated(resume_order(client, settings, sessions, order_id, at) for order_id in unlisted)
    return len(waiting), sum(resumed)


async def reconcile(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    blocks_since: datetime | None,
    end_trials: bool = True,
    trust_listing: bool = True,
) -> Reconciled:
    """Make sure every running block (started since `blocks_since`, or all) has its term workflow, every
    running import its import workflow and every waiting order its order workflow; end the trials of customers
    already upgraded (`end_trials`: not while the worker runs, where an upgrade in flight ends them itself, as its
    partner manager). With `trust_listing` a workflow the server's visibility lists as running is taken to run
    without asking about it; visibility trails the server by a moment, so a workflow terminated just before is
    left to the next round. Without it (`licensing reconcile`, run by hand right after a terminate) every one is
    asked about."""
    trials_ended = await _end_upgraded_trials(sessions, datetime.now(UTC)) if end_trials else 0
    orders, orders_resumed = await _resume_waiting_orders(
        client, settings, sessions, datetime.now(UTC), trust_listing=trust_listing
    )
    async with sessions() as session:
        blocks = select(LicenceBlock, Customer).join(Customer, Customer.id == LicenceBlock.customer_id)
        blocks = blocks.where(LicenceBlock.status == "active")
        if blocks_since is not None:
            blocks = blocks.where(LicenceBlock.starts_at >= blocks_since)
        running_blocks = (await session.execute(blocks)).all()
        imports = select(LearnerImport, Customer, User).join(Customer, Customer.id == LearnerImport.customer_id)
        imports = imports.join(User, User.id == LearnerImport.created_by_id).where(LearnerImport.status == "running")
        running_imports = (await session.execute(imports)).all()
    running = await running_ids(client, "LicenceBlockWorkflow") if running_blocks and trust_listing else frozenset()
    terms = await _gated(
        _ensure_term(client, settings, sessions, customer, block, running) for block, customer in running_blocks
    )
    imports_started = 0
    for upload, customer, user in running_imports:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start_import(client, settings, customer, upload, uploader(user, customer))
            imports_started += 1
    return Reconciled(
        terms=len(running_blocks),
        imports=len(running_imports),
        trials_ended=trials_ended,
        orders=orders,
        orders_resumed=orders_resumed,
        terms_started_again=terms.count(TermRepair.STARTED_AGAIN),
        terms_started=terms.count(TermRepair.STARTED),
        imports_started=imports_started,
    )


async def keep_reconciling(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    every: timedelta,
    blocks_within: timedelta,
) -> None:
    """Reconcile every `every` (blocks started within `blocks_within`), for as long as the worker runs: a write
    cut in two while the worker kept running is repaired without waiting for its next start. A failed round (the
    database or Temporal away) is logged and tried again at the next."""
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            since = datetime.now(UTC) - blocks_within
            repaired = await reconcile(client, settings, sessions, blocks_since=since, end_trials=False)
        except Exception:
            log.warning("the periodic repair failed; trying again in %s", every, exc_info=True)
            continue
        if repaired.repaired_anything:
            log.info("periodic repair: %s", repaired)
