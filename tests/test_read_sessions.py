"""Reads (GET) go on beside a writer instead of queueing behind it, see only what is committed, and cannot write."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import learners
from db.models import Partner
from db.session import read_sessions
from payloads.common import SYSTEM
from rules.licences import LearnerSource
from tests.factories import Tenant


async def test_a_read_answers_while_a_writer_holds_the_database(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    url = f"/customers/{tenant.customer_id}/learners"
    async with sessions.begin() as writer:
        await learners.add_learner(
            writer,
            customer_id=tenant.customer_id,
            email="not-yet@example.com",
            name="Not Yet",
            source=LearnerSource.MANUAL,
            actor=SYSTEM,
            now=datetime.now(UTC),
        )
        # The writer has not committed: a reader that queued behind it would never answer inside this block.
        during = await asyncio.wait_for(api.get(url, headers=tenant.customer_manager.headers), timeout=20)
    after = await api.get(url, headers=tenant.customer_manager.headers)
    assert (during.status_code, [item["email"] for item in during.json()["items"]]) == (200, [])
    assert [item["email"] for item in after.json()["items"]] == ["not-yet@example.com"]


async def test_a_directory_reads_while_a_writer_holds_the_database(
    scim: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A directory's lookups (its token, GET /Users, a search) do not queue behind an import batch or a manual
    add: they read what is committed, beside the writer."""
    async with sessions.begin() as writer:
        await learners.add_learner(
            writer,
            customer_id=tenant.customer_id,
            email="not-yet-synced@example.com",
            name="Not Yet",
            source=LearnerSource.MANUAL,
            actor=SYSTEM,
            now=datetime.now(UTC),
        )
        listed = await asyncio.wait_for(scim.get("/Users"), timeout=20)
        search = {"filter": 'userName eq "not-yet-synced@example.com"'}
        searched = await asyncio.wait_for(scim.post("/Users/.search", json=search), timeout=20)
    assert listed.status_code == 200, listed.text
    assert listed.json()["totalResults"] == 0
    assert searched.status_code == 200, searched.text
    assert searched.json()["totalResults"] == 0
    assert (await scim.get("/Users")).json()["totalResults"] == 1


async def test_a_read_session_cannot_write(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    with pytest.raises(DBAPIError):
        async with read_sessions(sessions).begin() as reader:
            partner = await reader.get_one(Partner, tenant.partner_id)
            partner.name = "Renamed by a reader"
    async with sessions() as session:
        name = (await session.execute(select(Partner.name).where(Partner.id == tenant.partner_id))).scalar_one()
    assert name != "Renamed by a reader"


async def test_a_writer_after_a_reader_on_the_same_connection_may_write(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """The pool hands connections back and forth: a connection last used for reading writes again."""
    for _ in range(3):
        async with read_sessions(sessions)() as reader:
            await reader.get_one(Partner, tenant.partner_id)
        new_name = f"Partner {uuid.uuid4().hex[:6]}"
        async with sessions.begin() as writer:
            (await writer.get_one(Partner, tenant.partner_id)).name = new_name
        async with read_sessions(sessions)() as reader:
            assert (await reader.get_one(Partner, tenant.partner_id)).name == new_name


async def test_a_read_sees_one_moment_however_many_queries_it_makes(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """A GET that reads twice (the licence counts, then the blocks; a stock statement's header, then its lines)
    answers from one snapshot: a commit between its queries is not half in its answer."""
    async with read_sessions(sessions)() as reader:
        before = (await reader.execute(select(Partner.name).where(Partner.id == tenant.partner_id))).scalar_one()
        async with sessions.begin() as writer:
            (await writer.get_one(Partner, tenant.partner_id)).name = f"Partner {uuid.uuid4().hex[:6]}"
        again = (await reader.execute(select(Partner.name).where(Partner.id == tenant.partner_id))).scalar_one()
    assert again == before
