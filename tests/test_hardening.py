"""Races found in review, and the database's own guards: each once broke a rule or answered 500 (bad input
found in review: tests/test_bad_input.py)."""

import asyncio
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import blocks, directory, learners
from db import scim as directory_sync
from db.models import Customer, Learner, Licence
from payloads.blocks import ExpireBlock
from payloads.common import SYSTEM
from rules.errors import Conflict, InsufficientLicences
from rules.licences import BlockKind, LearnerSource, LearnerStatus
from tests import factories
from tests.databases import backend
from tests.factories import Tenant

NOW = datetime.now(UTC)


async def _state(sessions: async_sessionmaker[AsyncSession], learner_id: uuid.UUID) -> tuple[bool, str, int]:
    async with sessions() as session:
        learner = await session.get_one(Learner, learner_id)
        held = (await session.execute(select(Licence).where(Licence.learner_id == learner_id))).all()
        return learner.active, learner.licence_status, len(held)


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_allocation_with_a_licence_locked_elsewhere_allocates_nobody(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    waiting = [await factories.learner(sessions, tenant) for _ in range(3)]
    await factories.block(sessions, tenant, quantity=3, days=100)
    async with sessions.begin() as other:
        await other.execute(select(Licence).where(Licence.customer_id == tenant.customer_id).limit(1).with_for_update())
        with pytest.raises(InsufficientLicences, match="asked 3, available 2"):
            async with sessions.begin() as session:
                await learners.allocate(
                    session,
                    customer_id=tenant.customer_id,
                    learner_ids=[w.id for w in waiting],
                    every=None,
                    actor=SYSTEM,
                    now=datetime.now(UTC),
                )
    assert [(await _state(sessions, w.id))[1] for w in waiting] == ["unlicensed"] * 3


class _RolledBack(Exception):
    pass


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_a_learner_added_beside_an_allocation_that_rolls_back_gets_the_licence_it_let_go(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """An addition (or a refused allocation, or a failed import batch) locks the only free licence and then rolls
    back: a learner added meanwhile waits for it instead of passing the locked licence by and staying unlicensed."""
    await factories.block(sessions, tenant, quantity=1, days=100)
    with pytest.raises(_RolledBack):
        async with sessions.begin() as first:
            [held] = await learners.create_learners(
                first,
                customer_id=tenant.customer_id,
                new=[learners.NewLearner(email="first@example.com", name="First")],
                source=LearnerSource.CSV,
                actor=SYSTEM,
                now=datetime.now(UTC),
            )
            assert held.licensed
            second = asyncio.create_task(factories.learner(sessions, tenant))
            await asyncio.sleep(0.3)  # the second addition is under way
            raise _RolledBack
    added = await second
    assert await _state(sessions, added.id) == (True, LearnerStatus.ACTIVE.value, 1)


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_a_learner_added_while_an_upgrade_commits_gets_no_trial_licence(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """The upgrade holds the customer's row lock until it commits; an addition meanwhile waits and then sees a
    premium customer, whose trial licences are no longer handed out."""
    async with sessions.begin() as session:
        (await session.get_one(Customer, tenant.customer_id)).account_type = "trial"
        await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.TRIAL,
            quantity=1,
            starts_at=NOW,
            expires_at=NOW + timedelta(days=14),
        )
    async with sessions.begin() as upgrading:
        customer = await upgrading.get_one(Customer, tenant.customer_id)
        await directory.upgrade_customer(upgrading, customer=customer, actor=SYSTEM, at=datetime.now(UTC))
        added = asyncio.create_task(factories.learner(sessions, tenant))
        await asyncio.sleep(0.3)  # the addition is under way
    assert await _state(sessions, (await added).id) == (True, LearnerStatus.UNLICENSED.value, 0)


async def test_a_late_batch_does_not_hand_out_licences_whose_block_has_ended(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """An import batch retried after an outage carries its workflow's earlier time; a block that ended since (its
    expiry not yet run) must not give its licences before a block still valid."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        for expires_at in (now - timedelta(minutes=30), now + timedelta(days=90)):
            await blocks.create_block(
                session,
                customer_id=tenant.customer_id,
                kind=BlockKind.PREMIUM,
                quantity=1,
                starts_at=now - timedelta(days=300),
                expires_at=expires_at,
            )
    async with sessions.begin() as session:
        [created] = await learners.create_learners(
            session,
            customer_id=tenant.customer_id,
            new=[learners.NewLearner(email=f"late-{uuid.uuid4().hex[:8]}@example.com", name="Late")],
            source=LearnerSource.CSV,
            actor=SYSTEM,
            now=now - timedelta(hours=1),  # the batch's time, before the first block ended
        )
    async with sessions() as session:
        learner = await session.get_one(Learner, created.id)
    assert learner.licence_expires_at is not None
    assert learner.licence_expires_at.replace(tzinfo=UTC) > now + timedelta(days=89)


async def test_the_same_learner_added_twice_at_once_is_a_conflict_that_names_the_email(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"

    outcomes = await asyncio.gather(
        factories.learner(sessions, tenant, email=email, now=NOW),
        factories.learner(sessions, tenant, email=email, now=NOW),
        return_exceptions=True,
    )
    refusals = [str(o) for o in outcomes if isinstance(o, Conflict)]
    assert (len(refusals), sum(isinstance(o, Learner) for o in outcomes)) == (1, 1), outcomes
    assert email in refusals[0]


async def test_the_database_refuses_a_licence_of_one_customer_held_by_anothers_learner_or_block(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """Whatever the code above it does: a licence's learner and block are of the licence's own customer."""
    other = await factories.tenant(sessions)
    await factories.block(sessions, tenant, quantity=1, days=30)
    async with sessions() as session:
        licence_id = (
            await session.execute(select(Licence.id).where(Licence.customer_id == tenant.customer_id))
        ).scalar_one()
    stranger = await factories.learner(sessions, other, now=NOW)
    changes: list[dict[str, object]] = [
        {"status": "allocated", "learner_id": stranger.id, "allocated_at": NOW},  # another company's learner
        {"customer_id": other.customer_id},  # moved to another company, its block left behind
    ]
    for change in changes:
        with pytest.raises(IntegrityError):
            async with sessions.begin() as session:
                await session.execute(update(Licence).where(Licence.id == licence_id).values(**change))


async def test_expiry_racing_an_allocation_leaves_no_active_learner_without_a_licence(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await factories.block(sessions, tenant, quantity=2, days=100)
    block_id = await factories.block_id(sessions, tenant)
    newcomer = None
    async with sessions.begin() as racing:
        newcomer = await learners.add_learner(
            racing,
            customer_id=tenant.customer_id,
            email="racer@example.com",
            name="Racer",
            source=LearnerSource.SCIM,
            actor=SYSTEM,
            now=datetime.now(UTC),
        )
        expiry = asyncio.create_task(
            blocks.expire_block(
                sessions, ExpireBlock(block_id=block_id, at=datetime.now(UTC), actor=SYSTEM, reason="upgrade")
            )
        )
        await asyncio.sleep(0.3)  # the expiry waits for this transaction
    await expiry
    assert await _state(sessions, newcomer.id) == (True, LearnerStatus.EXPIRED.value, 0)


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_deleting_a_learner_while_its_block_expires_does_not_deadlock(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """The deletion has locked its learner when the expiry locks the block's licences and waits for the holders;
    the deletion then frees the learner's licence. Locking the licence before the learner makes the expiry wait
    for the deletion instead of each waiting for the other (which PostgreSQL ended by aborting one of them)."""
    await factories.block(sessions, tenant, quantity=2, days=100)
    leaving, staying = await factories.learner(sessions, tenant), await factories.learner(sessions, tenant)
    block_id = await factories.block_id(sessions, tenant)
    async with sessions.begin() as deleting:
        await learners.get_learner(deleting, tenant.customer_id, leaving.id, for_update=True)
        expiry = asyncio.create_task(
            blocks.expire_block(
                sessions, ExpireBlock(block_id=block_id, at=datetime.now(UTC), actor=SYSTEM, reason="term ended")
            )
        )
        await asyncio.sleep(0.3)  # the expiry is under way
        await learners.delete_learner(
            deleting, customer_id=tenant.customer_id, learner_id=leaving.id, actor=SYSTEM, now=datetime.now(UTC)
        )
    expired = await expiry
    assert (expired.licences_expired, expired.learners_expired) == (2, 1)
    assert await _state(sessions, staying.id) == (True, LearnerStatus.EXPIRED.value, 0)


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_deleting_a_learner_given_a_licence_while_it_waited_does_not_deadlock_with_the_expiry(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """An allocation holds the learner and its new licence; the block's expiry waits for the licence, the deletion
    (which found no licence to lock) for the learner. When the allocation commits, the expiry has the licence and
    wants the learner, the deletion the learner and wants the licence: the deletion lets go and takes both again."""
    learner = await factories.learner(sessions, tenant)  # no licence yet: unlicensed
    await factories.block(sessions, tenant, quantity=1, days=100)
    block_id = await factories.block_id(sessions, tenant)

    async def delete() -> None:
        async with sessions.begin() as session:
            await learners.delete_learner(
                session, customer_id=tenant.customer_id, learner_id=learner.id, actor=SYSTEM, now=datetime.now(UTC)
            )

    async with sessions.begin() as allocating:
        await learners.allocate(
            allocating,
            customer_id=tenant.customer_id,
            learner_ids=[learner.id],
            every=None,
            actor=SYSTEM,
            now=datetime.now(UTC),
        )
        expiry = asyncio.create_task(
            blocks.expire_block(
                sessions, ExpireBlock(block_id=block_id, at=datetime.now(UTC), actor=SYSTEM, reason="term ended")
            )
        )
        await asyncio.sleep(0.3)  # the expiry waits for the licence
        deletion = asyncio.create_task(delete())
        await asyncio.sleep(0.3)  # the deletion waits for the learner
    expired, _ = await asyncio.gather(expiry, deletion)  # a deadlock would fail one of them
    async with sessions() as session:
        left = await session.get(Learner, learner.id)
    assert (expired.licences_expired, expired.learners_expired, left) == (1, 1, None)


async def test_deactivation_racing_an_allocation_leaves_the_learner_consistent(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    learner = await factories.learner(sessions, tenant)  # no licence yet: unlicensed
    await factories.block(sessions, tenant, quantity=1, days=100)

    async def deactivate() -> None:
        async with sessions.begin() as session:
            current = await learners.get_learner(session, tenant.customer_id, learner.id, for_update=True)
            user = directory_sync.as_directory_user(current)
            await directory_sync.change(
                session,
                learner=current,
                user=type(user)(**{**user.__dict__, "active": False}),
                actor=SYSTEM,
                now=datetime.now(UTC),
            )

    async with sessions.begin() as racing:
        await learners.allocate(
            racing,
            customer_id=tenant.customer_id,
            learner_ids=[learner.id],
            every=None,
            actor=SYSTEM,
            now=datetime.now(UTC),
        )
        directory = asyncio.create_task(deactivate())
        await asyncio.sleep(0.3)
    await directory
    assert await _state(sessions, learner.id) == (False, LearnerStatus.UNLICENSED.value, 0)


async def test_holding_a_licence_that_is_no_longer_free_fails_the_whole_transaction(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """The bulk hold checks how many licences it moved: a licence found free but taken before it was held (which
    the row locks should prevent) fails the transaction, so the other licence of the batch stays free too."""
    waiting = [await factories.learner(sessions, tenant) for _ in range(2)]  # no licences yet: both unlicensed
    await factories.block(sessions, tenant, quantity=2, days=100)
    first = await factories.learner(sessions, tenant)

    async def holder(held_by: uuid.UUID | None) -> uuid.UUID:
        async with sessions() as session:
            found = await session.execute(
                select(Licence.id).where(Licence.customer_id == tenant.customer_id, Licence.learner_id == held_by)
                if held_by
                else select(Licence.id).where(Licence.customer_id == tenant.customer_id, Licence.learner_id.is_(None))
            )
            return found.scalar_one()

    taken, free = await holder(first.id), await holder(None)
    pairs = [(waiting[0].id, learners._FreeLicence(free, NOW)), (waiting[1].id, learners._FreeLicence(taken, NOW))]
    with pytest.raises(learners.LicenceTaken, match="2 licences were to be held but only 1 were still free"):
        async with sessions.begin() as session:
            await learners._hold(session, pairs, now=NOW)
    assert (await holder(None), await _state(sessions, waiting[0].id), await _state(sessions, first.id)) == (
        free,
        (True, "unlicensed", 0),
        (True, "active", 1),
    )


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_a_request_postgresql_undoes_for_a_deadlock_is_told_to_send_it_again(
    app: FastAPI, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A real deadlock: two transactions lock two customers in opposite orders; PostgreSQL undoes one. The API
    answers it 503 with Retry-After and says nothing was written, not that the database is away."""
    first, second = (await factories.tenant(sessions)).customer_id, (await factories.tenant(sessions)).customer_id

    async def lock(order: tuple[uuid.UUID, uuid.UUID]) -> None:
        async with sessions.begin() as session:
            for n, customer_id in enumerate(order):
                await session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())
                if n == 0:
                    await asyncio.sleep(0.3)

    outcomes = await asyncio.gather(lock((first, second)), lock((second, first)), return_exceptions=True)
    [undone] = [o for o in outcomes if isinstance(o, OperationalError)]
    handler = app.exception_handlers[OperationalError]
    handled = handler(Request({"type": "http", "method": "POST", "path": "/", "headers": []}), undone)
    assert isinstance(handled, Awaitable)
    answer = await handled
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "1")
    assert b"send it again" in answer.body


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite takes the whole database's write lock up front")
async def test_a_training_record_posted_while_its_learner_is_deleted_is_404(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    learner = await factories.learner(sessions, tenant)
    async with sessions.begin() as deleting:
        await learners.delete_learner(
            deleting, customer_id=tenant.customer_id, learner_id=learner.id, actor=SYSTEM, now=datetime.now(UTC)
        )
        posted = asyncio.create_task(
            api.post(
                f"/customers/{tenant.customer_id}/learners/{learner.id}/training-records",
                json={"course": "Fire safety", "completed_at": "2024-01-01T00:00:00Z", "score": 90},
                headers=tenant.customer_manager.headers,
            )
        )
        await asyncio.sleep(1.5)  # the record is on its way while the deletion is being written
    answer = await asyncio.wait_for(posted, 30)
    assert (answer.status_code, answer.json()["detail"]) == (404, f"learner {learner.id} not found")
