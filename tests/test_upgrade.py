"""Upgrading a trial customer ends its trial at once, even between the upgrade's commit and its trial blocks'
expiry, and even when the request to expire them never reached their workflows."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from api import block_workflows
from api.main import create_app
from db import blocks, notices
from db.models import AuditEvent, Customer, Learner, Licence, LicenceBlock
from licensing.config import Settings
from licensing.reconcile import reconcile
from licensing.temporal import build_worker
from payloads.blocks import BlockEvent, BlockNotice, ExpireBlock
from payloads.common import SYSTEM
from rules.licences import BlockKind
from tests import factories
from tests.smtp_server import SmtpServer
from tests.test_api_orders import eventually
from workflows.block import block_workflow_id


async def _block(
    sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, kind: BlockKind, days: int
) -> uuid.UUID:
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        made = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=kind,
            quantity=2,
            starts_at=now,
            expires_at=now + timedelta(days=days),
        )
    return made.id


async def _account(sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant, account_type: str) -> None:
    async with sessions.begin() as session:
        (await session.get_one(Customer, tenant.customer_id)).account_type = account_type


async def _block_of(sessions: async_sessionmaker[AsyncSession], learner_id: uuid.UUID) -> uuid.UUID | None:
    async with sessions() as session:
        held = await session.execute(select(Licence.block_id).where(Licence.learner_id == learner_id))
        return held.scalar_one_or_none()


async def test_a_premium_customers_trial_licences_are_not_handed_out_while_they_wait_to_expire(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The upgrade has committed (the customer is premium) and its trial block still runs: a learner added now
    gets a premium licence, not the trial one that expires sooner (and in a moment)."""
    tenant = await factories.tenant(sessions)  # premium
    await _block(sessions, tenant, BlockKind.TRIAL, days=14)
    premium = await _block(sessions, tenant, BlockKind.PREMIUM, days=365)
    learner = await factories.learner(sessions, tenant, email="ann@example.com")
    assert (learner.licence_status, await _block_of(sessions, learner.id)) == ("active", premium)


async def test_reconcile_ends_the_trial_of_a_customer_upgraded_while_temporal_was_away(
    dev_server: WorkflowEnvironment, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    await _account(sessions, tenant, "trial")
    trial = await _block(sessions, tenant, BlockKind.TRIAL, days=14)
    holder = await factories.learner(sessions, tenant, email="ann@example.com")
    assert await _block_of(sessions, holder.id) == trial
    await _account(sessions, tenant, "premium")  # the upgrade committed; its trial block never heard of it
    async with build_worker(dev_server.client, settings, sessions):
        first = await reconcile(dev_server.client, settings, sessions, blocks_since=None)
        again = await reconcile(dev_server.client, settings, sessions, blocks_since=None)
    async with sessions() as session:
        block = await session.get_one(LicenceBlock, trial)
        learner = await session.get_one(Learner, holder.id)
    assert (first.trials_ended >= 1, again.trials_ended) == (True, 0)  # the database may hold others' trials
    assert (block.status, learner.licence_status) == ("expired", "expired")
    # Its workflow still sleeps towards the trial's reminders: when one comes due, nobody is reminded.
    reminder = BlockNotice(block_id=trial, event=BlockEvent.REMINDER, at=datetime.now(UTC), offset="P7D")
    written = await notices.notify_block_event(sessions, reminder, mail_from=settings.mail_from)
    assert written.email_ids == []


async def test_a_trial_upgraded_while_temporal_was_away_sends_no_renewal_reminder_before_its_repair(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The upgrade committed and the trial block still runs until the worker's next repair: a reminder of the trial
    falling due in between would ask a premium customer to renew a trial it has left."""
    tenant = await factories.tenant(sessions)
    await _account(sessions, tenant, "trial")
    trial = await _block(sessions, tenant, BlockKind.TRIAL, days=14)
    reminder = BlockNotice(block_id=trial, event=BlockEvent.REMINDER, at=datetime.now(UTC), offset="P7D")
    while_trial = await notices.notify_block_event(sessions, reminder, mail_from=settings.mail_from)
    await _account(sessions, tenant, "premium")
    other = BlockNotice(block_id=trial, event=BlockEvent.REMINDER, at=datetime.now(UTC), offset="P1D")
    after_upgrade = await notices.notify_block_event(sessions, other, mail_from=settings.mail_from)
    assert (len(while_trial.email_ids), after_upgrade.email_ids) == (2, [])


async def test_two_upgrades_at_once_upgrade_once(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    await _account(sessions, tenant, "trial")
    answers = await asyncio.gather(
        *(
            api.post(f"/customers/{tenant.customer_id}/upgrade", headers=tenant.partner_manager.headers)
            for _ in range(6)
        )
    )
    async with sessions() as session:
        recorded = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.subject_id == tenant.customer_id, AuditEvent.action == "customer.upgraded")
        )
    assert ([a.status_code for a in answers], recorded) == ([200] * 6, 1)


async def test_an_upgrade_while_no_worker_runs_ends_the_trial_at_once_and_its_summary_follows(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No worker takes the term's tasks (stopped for a deploy): the upgrade still answers, its trial licences are
    expired when it does, and the summary goes out once a worker runs again."""
    monkeypatch.setattr(block_workflows, "WORKFLOW_WITHIN_SECONDS", 1.0)
    tenant = await factories.tenant(sessions)
    app = create_app(settings, sessions=sessions, temporal=dev_server.client)  # and no worker
    pm = tenant.partner_manager.headers
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1") as api:
        made = await api.post(
            f"/partners/{tenant.partner_id}/customers",
            json={"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial", "trial_licences": 2},
            headers=pm,
        )
        trial = made.json()["id"]
        added = await api.post(
            f"/customers/{trial}/learners", json={"email": "tia@example.com", "name": "Tia"}, headers=pm
        )
        upgraded = await api.post(f"/customers/{trial}/upgrade", headers=pm)
        licences = (await api.get(f"/customers/{trial}/licences", headers=pm)).json()
        learner = (await api.get(f"/customers/{trial}/learners/{added.json()['id']}", headers=pm)).json()
    assert (upgraded.status_code, licences["expired"], licences["available"]) == (200, 2, 0), upgraded.text
    assert learner["licence_status"] == "expired"
    [block] = licences["blocks"]
    async with build_worker(dev_server.client, settings, sessions):
        term = dev_server.client.get_workflow_handle(block_workflow_id(uuid.UUID(block["id"])))
        await asyncio.wait_for(term.result(), 60)
    await eventually(lambda: smtp.inbox.to(tenant.partner_manager.email, about="expired"))
    [summary] = smtp.inbox.to(tenant.partner_manager.email, about="expired")
    assert "expired early: the customer was upgraded" in summary.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_a_trial_whose_term_ended_before_a_late_expiry_keeps_its_end(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A trial's term ended while no worker ran; the upgrade (or the repair) expires it in the database later: it
    expired at its term's end, not at that later moment, and its summary will not call it early."""
    tenant = await factories.tenant(sessions)
    ended = datetime.now(UTC) - timedelta(minutes=5)
    async with sessions.begin() as session:
        made = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.TRIAL,
            quantity=1,
            starts_at=ended - timedelta(days=14),
            expires_at=ended,
        )
    expired = await blocks.expire_block(
        sessions, ExpireBlock(block_id=made.id, at=datetime.now(UTC), actor=SYSTEM, reason="the customer was upgraded")
    )
    assert expired.expired_at == ended
