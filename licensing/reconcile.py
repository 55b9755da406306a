"""Repair what a write cut in two left behind: the database committed (a trial block, a CSV upload) but the
workflow could not be started (Temporal was down). Starting terms and imports is idempotent, so this is safe to
run at every worker start and by hand (`licensing reconcile`)."""

import contextlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import Customer, LearnerImport, LicenceBlock, User
from licensing.config import Settings
from licensing.imports import start_import
from licensing.terms import start_block_term
from payloads.common import Actor, Role


@dataclass(frozen=True)
class Reconciled:
    terms: int
    imports: int


async def reconcile(
    client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession], *, blocks_since: datetime | None
) -> Reconciled:
    """Make sure every running block (started since `blocks_since`, or all) has its term workflow and every
    running import its import workflow."""
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
    return Reconciled(terms=len(running_blocks), imports=len(running_imports))
