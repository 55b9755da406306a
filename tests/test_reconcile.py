"""A write cut in two (the database committed, Temporal was down) is repaired: the worker, at start, and
`licensing reconcile` start the missing licence terms and imports, once; a running worker does so now and then."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import (
    Client,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from db import imports
from db.models import Customer, LearnerImport, LicenceBlock
from licensing import operator
from licensing.config import Settings
from licensing.reconcile import keep_reconciling, reconcile
from licensing.runs import running_ids
from licensing.temporal import build_worker
from licensing.terms import start_block_term
from payloads.blocks import ExpireNow
from payloads.common import SYSTEM, Actor, Role
from rules.learner_csv import CsvRow
from tests import factories
from tests.ordering import Orders
from workflows.block import LicenceBlockWorkflow, block_workflow_id


async def test_missing_terms_and_imports_are_started_once(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    await factories.block(sessions, tenant, quantity=2, days=30)  # committed, but no workflow was started
    async with sessions.begin() as session:
        upload = await imports.store_upload(
            session,
            customer_id=tenant.customer_id,
            filename="staff.csv",
            rows=[CsvRow(2, "ann@example.com", "Ann")],
            now=datetime.now(UTC),
            actor=Actor(user_id=tenant.customer_manager.id, role=Role.CUSTOMER_MANAGER),
        )
    block_id = await factories.block_id(sessions, tenant)
    async with build_worker(dev_server.client, settings, sessions):
        first = await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        run = (await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).describe()).run_id
        await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        again = (await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).describe()).run_id
        for _ in range(200):
            async with sessions() as session:
                status = (await session.get_one(LearnerImport, upload.id, populate_existing=True)).status
            if status == "finished":
                break
            await asyncio.sleep(0.1)
    assert (first.terms >= 1, first.imports >= 1, again == run, status) == (True, True, True, "finished")


async def test_an_import_started_again_is_audited_as_its_uploader_acted(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A partner's manager uploaded in manage mode; the learners the repaired import adds say so too."""
    tenant = await factories.tenant(sessions)
    in_manage_mode = Actor(
        user_id=tenant.partner_manager.id,
        role=Role.PARTNER_MANAGER,
        manage_mode=True,
        on_behalf_of_customer_id=tenant.customer_id,
    )
    async with sessions.begin() as session:
        upload = await imports.store_upload(
            session,
            customer_id=tenant.customer_id,
            filename="staff.csv",
            rows=[CsvRow(2, "bo@example.com", "Bo")],
            now=datetime.now(UTC),
            actor=in_manage_mode,
        )
    async with build_worker(dev_server.client, settings, sessions):
        await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        await dev_server.client.get_workflow_handle(f"learner-import-{upload.id}").result()
    assert await factories.manage_mode_of_import(sessions, tenant) == (
        tenant.partner_manager.id,
        True,
        tenant.customer_id,
    )


async def test_a_running_blocks_ended_term_is_started_again_and_an_expired_ones_is_not(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A term terminated by hand (the Web UI) would leave its block active for good: reconcile starts it again.
    A term that ended by expiring its block is left alone."""
    tenant = await factories.tenant(sessions)
    await factories.block(sessions, tenant, quantity=1, days=30)
    block_id = await factories.block_id(sessions, tenant)
    handle = dev_server.client.get_workflow_handle_for(LicenceBlockWorkflow.run, block_workflow_id(block_id))
    async with build_worker(dev_server.client, settings, sessions):
        await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        await handle.terminate("an operator terminated it")
        ended = (await handle.describe()).run_id

        repaired = await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        started = await handle.describe()

        await handle.execute_update(LicenceBlockWorkflow.expire_now, ExpireNow(actor=SYSTEM))
        await asyncio.wait_for(handle.result(), 30)
        await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        last = await handle.describe()
    assert repaired.terms_started_again >= 1  # other tests' blocks may be among them
    assert (started.status, started.run_id != ended) == (WorkflowExecutionStatus.RUNNING, True)
    assert (last.run_id, last.status) == (started.run_id, WorkflowExecutionStatus.COMPLETED)


async def test_a_running_worker_repairs_a_term_left_unstarted_without_waiting_for_its_next_start(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    await factories.block(sessions, tenant, quantity=1, days=30)  # committed while Temporal was away
    block_id = await factories.block_id(sessions, tenant)
    term = dev_server.client.get_workflow_handle(block_workflow_id(block_id))
    repairing = asyncio.create_task(
        keep_reconciling(
            dev_server.client, settings, sessions, every=timedelta(seconds=0.5), blocks_within=timedelta(days=1)
        )
    )
    try:
        for _ in range(100):
            with contextlib.suppress(RPCError):
                if (await term.describe()).status is WorkflowExecutionStatus.RUNNING:
                    break
            await asyncio.sleep(0.1)
    finally:
        repairing.cancel()
    assert (await term.describe()).status is WorkflowExecutionStatus.RUNNING
    await factories.expire_customer_blocks(sessions, tenant)  # no later repair starts its term again
    await term.terminate(reason="test over")


async def _block_without_a_term(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, *, days: int
) -> tuple[Customer, LicenceBlock]:
    """The customer's one block of one licence, ending in `days`, saved while no term was started for it."""
    await factories.block(sessions, tenant, quantity=1, days=days)
    block_id = await factories.block_id(sessions, tenant)
    async with sessions() as session:
        return await session.get_one(Customer, tenant.customer_id), await session.get_one(LicenceBlock, block_id)


class _Described(Interceptor):
    """The workflow ids a client asks the server to describe, one request each."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Describing(next, self.ids)


class _Describing(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, ids: list[str]) -> None:
        super().__init__(next)
        self._ids = ids

    async def describe_workflow(self, input: DescribeWorkflowInput) -> WorkflowExecutionDescription:
        self._ids.append(input.id)
        return await super().describe_workflow(input)


async def test_a_repair_round_describes_only_the_workflows_the_server_does_not_list_as_running(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """One list request covers every running term and order; only a block or order missing from it is asked
    about (and repaired), instead of one request for each of thousands."""
    tenant = await factories.tenant(sessions)
    customer, block = await _block_without_a_term(sessions, tenant, days=30)
    described = _Described()
    config = dev_server.client.config()
    config["interceptors"] = [described]
    counted = Client(**config)
    orders = Orders(dev_server, settings)
    async with build_worker(dev_server.client, settings, sessions):
        await start_block_term(dev_server.client, settings, customer, block)
        order = await orders.request(tenant, 2)
        await factories.block(sessions, tenant, quantity=1, days=30)  # its term was never started
        async with sessions() as session:
            unstarted = await session.scalar(
                select(LicenceBlock.id).where(
                    LicenceBlock.customer_id == tenant.customer_id, LicenceBlock.id != block.id
                )
            )
        for _ in range(100):  # visibility trails a start by a moment
            listed = await running_ids(dev_server.client, "LicenceBlockWorkflow") | await running_ids(
                dev_server.client, "LicenceOrderWorkflow"
            )
            if {block_workflow_id(block.id), order.id} <= listed:
                break
            await asyncio.sleep(0.1)
        repaired = await reconcile(counted, settings, sessions, blocks_since=None)
        await orders.cancel(order, tenant)
    assert unstarted is not None
    assert repaired.terms_started >= 1
    assert (block_workflow_id(block.id) in described.ids, order.id in described.ids) == (False, False)
    assert block_workflow_id(unstarted) in described.ids  # not listed: asked about, and its term started
    assert (await dev_server.client.get_workflow_handle(block_workflow_id(unstarted)).describe()).status is (
        WorkflowExecutionStatus.RUNNING
    )
    await factories.expire_customer_blocks(sessions, tenant)


async def test_a_repair_by_hand_asks_about_every_term_and_does_not_trust_a_listing_that_trails(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator terminates a term in the Web UI and runs `licensing reconcile --all` at once, while visibility
    still lists the term as running (it trails the server by a moment): the term is started again all the same.
    A worker's own rounds take the listing's word; the next round finds what it missed."""
    tenant = await factories.tenant(sessions)
    customer, block = await _block_without_a_term(sessions, tenant, days=300)
    term = dev_server.client.get_workflow_handle(block_workflow_id(block.id))
    by_hand = settings.model_copy(update={"temporal_address": dev_server.client.service_client.config.target_host})
    async with build_worker(dev_server.client, settings, sessions):
        await start_block_term(dev_server.client, settings, customer, block)
        await term.terminate("an operator terminated it")
        stale = frozenset({term.id})  # the listing as it stood a moment before the terminate

        async def trailing(client: Client, workflow_type: str) -> frozenset[str]:
            return stale if workflow_type == "LicenceBlockWorkflow" else frozenset()

        monkeypatch.setattr("licensing.reconcile.running_ids", trailing)
        round_of_a_worker = await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        repaired = await operator.reconcile(by_hand, everything=True)
        status = (await term.describe()).status
    await factories.expire_customer_blocks(sessions, tenant)
    assert (round_of_a_worker.terms_started_again, repaired.terms_started_again >= 1) == (0, True)
    assert status is WorkflowExecutionStatus.RUNNING
