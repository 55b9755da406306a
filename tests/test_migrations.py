"""Migration 0010 (a licence's block and learner are of its own customer) on a database that already holds data:
it upgrades, downgrades and upgrades again; it names the licences that stand in its way instead of failing with a
bare constraint violation (PostgreSQL) or adding keys the existing rows break (SQLite); and once it has run, the
database refuses a licence handed to another customer's learner."""

import unicodedata
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.migrate import downgrade, upgrade
from db.models import Learner, Licence
from db.session import create_engine, create_session_factory
from tests import factories
from tests.databases import fresh_database


@asynccontextmanager
async def _database_at(tmp_path: Path, revision: str) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    """A fresh database migrated to `revision`, and sessions on it."""
    with fresh_database(tmp_path, revision) as url:
        engine = create_engine(url)
        yield url, create_session_factory(engine)
        await engine.dispose()


@pytest.fixture
async def at_0009(tmp_path: Path) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    async with _database_at(tmp_path, "0009") as database:
        yield database


async def _hand_to_another_customer(
    sessions: async_sessionmaker[AsyncSession], ours: factories.Tenant, theirs: factories.Tenant
) -> uuid.UUID:
    """One of `ours`' licences, held by a learner of `theirs`: what the new keys exist to refuse."""
    stranger = await factories.learner(sessions, theirs)
    async with sessions.begin() as session:
        licence_id = (
            await session.execute(
                select(Licence.id)
                .where(Licence.customer_id == ours.customer_id, Licence.status == "available")
                .limit(1)
            )
        ).scalar_one()
        await session.execute(
            update(Licence).where(Licence.id == licence_id).values(status="allocated", learner_id=stranger.id)
        )
    return licence_id


async def _allocated(sessions: async_sessionmaker[AsyncSession], tenant: factories.Tenant) -> int:
    query = select(func.count()).where(Licence.customer_id == tenant.customer_id, Licence.status == "allocated")
    return await factories.scalar(sessions, query)


async def test_0010_names_the_licences_in_its_way_and_runs_once_they_are_corrected(
    at_0009: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    url, sessions = at_0009
    ours, theirs = await factories.tenant(sessions), await factories.tenant(sessions)
    await factories.block(sessions, ours, quantity=3, days=30)
    await factories.learner(sessions, ours)  # takes one of ours, as it should
    wrong = await _hand_to_another_customer(sessions, ours, theirs)

    with pytest.raises(RuntimeError, match=rf"another customer than their own: 1 \({wrong}\)"):
        upgrade(url, "head")

    async with sessions.begin() as session:
        await session.execute(update(Licence).where(Licence.id == wrong).values(status="available", learner_id=None))
    upgrade(url, "head")
    downgrade(url, "0009")
    upgrade(url, "head")
    assert await _allocated(sessions, ours) == 1  # the learner's licence went through all three

    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        await _hand_to_another_customer(sessions, ours, theirs)
    assert await _allocated(sessions, ours) == 1


@pytest.fixture
async def at_0010(tmp_path: Path) -> AsyncIterator[tuple[str, async_sessionmaker[AsyncSession]]]:
    async with _database_at(tmp_path, "0010") as database:
        yield database


async def _spell(sessions: async_sessionmaker[AsyncSession], learner_id: uuid.UUID, email: str) -> None:
    """An address as an import stored it before 0011: as the file spelt it, in lower case."""
    async with sessions.begin() as session:
        await session.execute(update(Learner).where(Learner.id == learner_id).values(email=email))


async def _email(sessions: async_sessionmaker[AsyncSession], learner_id: uuid.UUID) -> str | None:
    async with sessions() as session:
        return (await session.get_one(Learner, learner_id, populate_existing=True)).email


async def test_0011_keeps_every_learners_address_in_one_form_and_leaves_one_person_added_twice_to_a_manager(
    at_0010: tuple[str, async_sessionmaker[AsyncSession]],
) -> None:
    url, sessions = at_0010
    tenant = await factories.tenant(sessions)
    composed = unicodedata.normalize("NFC", "lée@example.com")
    accented, punycode, twice = [await factories.learner(sessions, tenant) for _ in range(3)]
    await _spell(sessions, accented.id, unicodedata.normalize("NFD", composed))
    await _spell(sessions, punycode.id, "bob@xn--exmple-cua.com")
    kept = await factories.learner(sessions, tenant, email="ann@exämple.com")  # as the API stores it
    await _spell(sessions, twice.id, "ann@xn--exmple-cua.com")  # the same person, imported before

    upgrade(url, "head")

    assert [await _email(sessions, learner.id) for learner in (accented, punycode, twice, kept)] == [
        composed,
        "bob@exämple.com",
        "ann@xn--exmple-cua.com",  # left for a manager to choose between the two
        "ann@exämple.com",
    ]
