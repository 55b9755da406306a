"""Repair what a write cut in two left behind: the database committed (a trial block, a CSV upload, an upgrade)
but the workflow could not be started or told (Temporal was down, the API stopped). Starting terms and imports
and expiring an upgraded customer's trial are idempotent, so this is safe to run at every worker start and by
hand (`licensing reconcile`)."""

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.blocks import expire_block
from db.models import Customer, LearnerImport, LicenceBlock, User
from licensing.config import Settings
from licensing.imports import start_import
from licensing.terms import start_block_term
from payloads.blocks import ExpireBlock
from payloads.common import SYSTEM, Actor, Role
from rules.licences import BlockKind


@dataclass(frozen=True)
class Reconciled:
    terms: int
    imports: int
    trials_ended: int = 0


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


async def reconcile(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], *, blocks_since: datetime | None
) -> Reconciled:
    """Make sure every running block (started since `blocks_since`, or all) has its term workflow and every
    running import its import workflow; end the trials of customers already upgraded."""
    trials_ended = await _end_upgraded_trials(sessions, datetime.now(UTC))
    async with sessions() as session:
        blocks = select(LicenceBlock, Customer).join(Customer, Customer.id == LicenceBlock.customer_id)
        blocks = blocks.where(LicenceBlock.status == "active")
        if blocks_since is not None:
            blocks = blocks.where(LicenceBlock.starts_at >= blocks_since)
        running_blocks = (await session.execute(blocks)).all()
        imports = select(LearnerImport, Customer, User).join(Customer, Customer.id == LearnerImport.customer_id)
        imports = imports.join(User, User.id == LearnerImport.created_by_id).where(LearnerImport.status == "running")
        running_imports = (await session.execute(imports)).all()
    for block, customer in running_blocks:
        await start_block_term(client, settings, customer, block)
    for upload, customer, user in running_imports:
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await start_import(client, settings, customer, upload, Actor(user_id=user.id, role=Role(user.role)))
    return Reconciled(terms=len(running_blocks), imports=len(running_imports), trials_ended=trials_ended)
