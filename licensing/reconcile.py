"""Repair what a write cut in two left behind: the database committed (a trial block, a CSV upload, an upgrade)
but the workflow could not be started or told (Temporal was down, the API stopped); and a waiting order whose
workflow was terminated by hand. Starting terms and imports, starting a waiting order's workflow when none runs
and expiring an upgraded customer's trial are idempotent, so this is safe to run at every worker start and by
hand (`licensing reconcile`)."""

import asyncio
import contextlib
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.blocks import expire_block
from db.models import Customer, LearnerImport, LicenceBlock, LicenceOrder, User
from licensing.config import Settings
from licensing.imports import start_import
from licensing.orders import resume_order
from licensing.runs import latest_status
from licensing.terms import start_block_term
from payloads.blocks import ExpireBlock
from payloads.common import SYSTEM, Actor, Role
from rules.licences import BlockKind
from rules.orders import OrderStatus
from workflows.block import block_workflow_id

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


async def _end_upgraded_trials(sessions: async_sessionmaker[AsyncSession], at: datetime) -> int:
    """Trial blocks still running for a customer already premium: the upgrade committed, but its request to end
    them never reached their workflows. They expire now, in the database (no worker may be running yet to
    answer their workflow); each workflow sends no renewal reminder for an expired block, and finds it expired
    when its own timer ends it (the expiry summary goes out then)."""
    async with sessions() as session:
        query = (
            select(LicenceBlock.id)
            .join(Customer, Customer.id == LicenceBlock.customer_id)
            .where(
                LicenceBlock.kind == BlockKind.TRIAL.value,
                LicenceBlock.status == "active",
                Customer.account_type == "premium",
            )
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


async def _count_true(checks: Iterable[Coroutine[Any, Any, bool]]) -> int:
    """Run the checks, AT_ONCE at a time; how many answered True."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def gated(check: Coroutine[Any, Any, bool]) -> bool:
        async with gate:
            return await check

    return sum(await asyncio.gather(*(gated(check) for check in checks)))


async def _ensure_term(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    customer: Customer,
    block: LicenceBlock,
) -> bool:
    """Start the term of an active block that has none running; True if a run of it had ended (terminated by
    hand). The block is read again once its term is found ended: a term expires its block before it ends, so a
    block still active then was left without one."""
    state = await latest_status(client, block_workflow_id(block.id))
    if state is WorkflowExecutionStatus.RUNNING:
        return False
    if state is None:
        await start_block_term(client, settings, customer, block)
        return False
    async with sessions() as session:
        status = await session.scalar(select(LicenceBlock.status).where(LicenceBlock.id == block.id))
    if status != "active":
        return False
    await start_block_term(client, settings, customer, block, again=True)
    return True


async def _resume_waiting_orders(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], at: datetime
) -> tuple[int, int]:
    """Every requested order has a running workflow to decide it: one terminated by hand is started again."""
    async with sessions() as session:
        query = select(LicenceOrder.id).where(LicenceOrder.status == OrderStatus.REQUESTED.value)
        waiting = list((await session.execute(query)).scalars())
    resumed = await _count_true(resume_order(client, settings, sessions, order_id, at) for order_id in waiting)
    return len(waiting), resumed


async def reconcile(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], *, blocks_since: datetime | None
) -> Reconciled:
    """Make sure every running block (started since `blocks_since`, or all) has its term workflow, every
    running import its import workflow and every waiting order its order workflow; end the trials of customers
    already upgraded."""
    trials_ended = await _end_upgraded_trials(sessions, datetime.now(UTC))
    orders, orders_resumed = await _resume_waiting_orders(client, settings, sessions, datetime.now(UTC))
    async with sessions() as session:
        blocks = select(LicenceBlock, Customer).join(Customer, Customer.id == LicenceBlock.customer_id)
        blocks = blocks.where(LicenceBlock.status == "active")
        if blocks_since is not None:
            blocks = blocks.where(LicenceBlock.starts_at >= blocks_since)
        running_blocks = (await session.execute(blocks)).all()
        imports = select(LearnerImport, Customer, User).join(Customer, Customer.id == LearnerImport.customer_id)
        imports = imports.join(User, User.id == LearnerImport.created_by_id).where(LearnerImport.status == "running")
        running_imports = (await session.execute(imports)).all()
    again = await _count_true(
        _ensure_term(client, settings, sessions, customer, block) for block, customer in running_blocks
    )
    for upload, customer, user in running_imports:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start_import(client, settings, customer, upload, uploader(user, customer))
    return Reconciled(
        terms=len(running_blocks),
        imports=len(running_imports),
        trials_ended=trials_ended,
        orders=orders,
        orders_resumed=orders_resumed,
        terms_started_again=again,
    )
