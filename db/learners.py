"""Learners and their licences: automatic allocation on creation, manual allocation to chosen learners, and
deletion that frees the licence. Allocation takes the valid licence that expires first (first-expiry, first-out).

Each function runs inside the caller's transaction. On PostgreSQL a transaction that hands out licences first
takes its customer's row lock (`directory.lock_customer`), so that one customer's allocations take turns: one
that locked free licences and then rolled back (a refused allocation, a failed import batch) has let them go
before the next looks for free licences, instead of making it pass them by. The licences taken are locked with
`FOR UPDATE SKIP LOCKED`, so an allocation never waits for a licence being expired or freed elsewhere. On SQLite
every transaction holds the write lock from its start (see db/session.py).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.blocks import upgraded_trial
from db.directory import lock_customer
from db.models import Customer, Learner, Licence, LicenceBlock, TrainingRecord
from db.types import affected, locks_rows
from payloads.common import Actor
from rules.emails import canonical
from rules.errors import Conflict, NotFound
from rules.licences import ALLOCATABLE, LearnerSource, LearnerStatus, LicenceStatus, check_allocation


class LicenceTaken(RuntimeError):
    """A licence found free (and locked) was no longer free when it was to be held: the transaction must not
    commit. Not the caller's fault, so no business refusal: an activity retries and finds other licences."""


@dataclass(frozen=True)
class _FreeLicence:
    id: uuid.UUID
    expires_at: datetime


async def _free_licences(
    session: AsyncSession, customer_id: uuid.UUID, *, now: datetime, count: int
) -> list[_FreeLicence]:
    """Up to `count` available licences still valid now, the soonest to expire first, locked for us. A trial
    block's licences are not handed out once its customer is premium: the upgrade has committed and the block is
    about to expire (its workflow ends it in a moment).

    "Now" is the later of `now` and the wall clock read here, after the customer's lock: `now` may be older (read
    before a wait for that lock, or an import batch's time, from its workflow, retried after an outage), and a
    licence whose block ended meanwhile, its expiry not yet run, must not be handed out before a valid one."""
    if count == 0:
        return []
    now = max(now, datetime.now(UTC))
    ending_trials = (
        select(LicenceBlock.id)
        .join(Customer, Customer.id == LicenceBlock.customer_id)
        .where(LicenceBlock.customer_id == customer_id, upgraded_trial(LicenceBlock, Customer))
    )
    query = (
        select(Licence.id, Licence.expires_at)
        .where(
            Licence.customer_id == customer_id,
            Licence.status == LicenceStatus.AVAILABLE.value,
            Licence.expires_at > now,
            Licence.block_id.not_in(ending_trials),
        )
        .order_by(Licence.expires_at, Licence.id)
        .limit(count)
        .with_for_update(skip_locked=True)
    )
    return [_FreeLicence(id, expires_at) for id, expires_at in (await session.execute(query)).all()]


_LICENCES = cast(Table, Licence.__table__)
_LEARNERS = cast(Table, Learner.__table__)


async def _hold(session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, _FreeLicence]], *, now: datetime) -> None:
    """Give each learner (by id) its licence, in one statement executed for every pair. The licences were
    locked when they were found free; should one have been taken all the same, nothing is half-done: the
    transaction fails."""
    if not pairs:
        return
    held = await session.execute(
        update(_LICENCES)
        .where(_LICENCES.c.id == bindparam("licence"), _LICENCES.c.status == LicenceStatus.AVAILABLE.value)
        .values(status=LicenceStatus.ALLOCATED.value, learner_id=bindparam("holder"), allocated_at=now),
        [{"licence": licence.id, "holder": learner_id} for learner_id, licence in pairs],
    )
    if (moved := affected(held)) != len(pairs):
        raise LicenceTaken(f"{len(pairs)} licences were to be held but only {moved} were still free")


@dataclass(frozen=True)
class NewLearner:
    email: str | None  # normalised (lower case) by the caller
    name: str
    external_id: str | None = None


@dataclass(frozen=True)
class CreatedLearner:
    id: uuid.UUID
    licensed: bool


async def create_learners(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    new: Sequence[NewLearner],
    source: LearnerSource,
    actor: Actor,
    now: datetime,
) -> list[CreatedLearner]:
    """Create learners (whose emails the caller checked are new) and give each a free licence while any is
    left, the soonest to expire first. The rest are `unlicensed`. A few statements, however many learners."""
    if not new:
        return []
    await lock_customer(session, customer_id)
    free = await _free_licences(session, customer_id, now=now, count=len(new))
    created = [CreatedLearner(id=uuid.uuid4(), licensed=i < len(free)) for i in range(len(new))]
    status = {True: LearnerStatus.ACTIVE.value, False: LearnerStatus.UNLICENSED.value}
    taken: list[_FreeLicence | None] = [*free, *[None] * (len(new) - len(free))]
    expiry = [licence.expires_at if licence else None for licence in taken]
    rows = [
        {
            "id": c.id,
            "customer_id": customer_id,
            "email": n.email,
            "name": n.name,
            "source": source.value,
            "licence_status": status[c.licensed],
            "licence_expires_at": expires_at,
            "created_at": now,
            "active": True,
            "external_id": n.external_id,
            "updated_at": now,
        }
        for c, n, expires_at in zip(created, new, expiry, strict=True)
    ]
    await session.execute(insert(_LEARNERS), rows)
    await _hold(session, [(c.id, licence) for c, licence in zip(created, free, strict=False)], now=now)
    await audit.record_each_for_customer(
        session,
        customer_id=customer_id,
        actor=actor,
        action="learner.created",
        subject_type="learner",
        at=now,
        subjects=[(c.id, _created(source, licence)) for c, licence in zip(created, taken, strict=True)],
    )
    return created


def _created(source: LearnerSource, licence: _FreeLicence | None) -> dict[str, object]:
    """A `learner.created` event's details: the licence it took at once (rule 1), as `licence.allocated` names one
    allocated by hand, so that the trail tells which licence every learner held from the start."""
    details: dict[str, object] = {"source": source.value, "licence_status": LearnerStatus.UNLICENSED.value}
    if licence is not None:
        details |= {
            "licence_status": LearnerStatus.ACTIVE.value,
            "licence_id": str(licence.id),
            "expires_at": licence.expires_at.isoformat(),
        }
    return details


def known_as(emails: set[str]) -> ColumnElement[bool]:
    """A learner who is one of these (canonical) addresses: by its email, or by the userName its directory gave it
    (Entra's UPN, which SCIM already refuses to give a second learner, whichever way round they come)."""
    return or_(
        Learner.email.in_(emails),
        and_(Learner.user_name.is_not(None), func.lower(Learner.user_name).in_(emails)),
    )


async def add_learner(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    email: str,
    name: str,
    source: LearnerSource,
    actor: Actor,
    now: datetime,
    external_id: str | None = None,
) -> Learner:
    """Create one learner and, in the same transaction, give it a free licence if there is one."""
    email = canonical(email)
    # Under the customer's row lock, as SCIM checks a userName: a directory user provisioned at this moment is seen.
    await lock_customer(session, customer_id)
    taken = await session.execute(select(Learner.id).where(Learner.customer_id == customer_id, known_as({email})))
    if taken.first():
        raise Conflict(f"a learner with email {email} already exists for this customer")
    new = [NewLearner(email=email, name=name, external_id=external_id)]
    try:
        [created] = await create_learners(
            session, customer_id=customer_id, new=new, source=source, actor=actor, now=now
        )
    except IntegrityError as clash:  # added at the same moment by another request: the check above missed it
        if not _email_taken(clash):
            raise
        raise Conflict(f"a learner with email {email} already exists for this customer (added just now)") from None
    return await session.get_one(Learner, created.id)


# PostgreSQL's name for the unnamed UniqueConstraint("customer_id", "email") of migration 0002.
LEARNER_EMAIL_UNIQUE = "learners_customer_id_email_key"


def _email_taken(clash: IntegrityError) -> bool:
    """Whether the clash is the customer's unique learner email: PostgreSQL names the constraint, SQLite the
    columns."""
    constraint = getattr(getattr(clash.orig, "diag", None), "constraint_name", None)
    if constraint is not None:
        return str(constraint) == LEARNER_EMAIL_UNIQUE
    return "learners.customer_id, learners.email" in str(clash.orig)


async def get_learner(
    session: AsyncSession, customer_id: uuid.UUID, learner_id: uuid.UUID, *, for_update: bool = False
) -> Learner:
    """The customer's learner; `for_update` locks it (and reloads it) for a change that depends on its state.

    Its licence is locked before it: expiring a block locks the block's licences and then their holders, so a
    change that freed a licence after locking its learner could deadlock with an expiry. Should an allocation
    that held the learner give it a licence while we waited for it, that licence is not locked yet, and an expiry
    may hold it and wait for the learner: the learner's lock is let go (a savepoint rolled back) and both are
    taken again, licence first."""
    if for_update and locks_rows(session):
        for _ in range(_LOCK_ATTEMPTS - 1):
            attempt = await session.begin_nested()
            if await _locked_with_its_licence(session, customer_id, learner_id):
                await attempt.commit()  # the savepoint is released; its locks stay with the transaction
                break
            await attempt.rollback()
        else:
            await _locked_with_its_licence(session, customer_id, learner_id)
    learner = await session.get(Learner, learner_id, with_for_update=for_update, populate_existing=for_update)
    if learner is None or learner.customer_id != customer_id:
        raise NotFound(f"learner {learner_id} not found")
    return learner


_LOCK_ATTEMPTS = 5


async def get_learner_kept(session: AsyncSession, customer_id: uuid.UUID, learner_id: uuid.UUID) -> Learner:
    """The customer's learner, kept from deletion until the transaction ends (PostgreSQL's `FOR KEY SHARE`, which
    only a deletion waits for), to write a row of its own: one deleted at this moment is not found, as it would
    be a moment later, rather than refused by the row's foreign key once the deletion commits."""
    found = await session.execute(
        select(Learner)
        .where(Learner.id == learner_id, Learner.customer_id == customer_id)
        .with_for_update(read=True, key_share=True)
        .execution_options(populate_existing=True)
    )
    learner = found.scalar_one_or_none()
    if learner is None:
        raise NotFound(f"learner {learner_id} not found")
    return learner


async def _locked_with_its_licence(session: AsyncSession, customer_id: uuid.UUID, learner_id: uuid.UUID) -> bool:
    """Lock the learner's licence, then the learner; whether the licence it holds now is one of those locked."""
    held = Licence.customer_id == customer_id, Licence.learner_id == learner_id
    locked = set((await session.execute(select(Licence.id).where(*held).with_for_update())).scalars())
    await session.execute(
        select(Learner.id).where(Learner.id == learner_id, Learner.customer_id == customer_id).with_for_update()
    )
    return set((await session.execute(select(Licence.id).where(*held))).scalars()) <= locked


async def _chosen(session: AsyncSession, customer_id: uuid.UUID, learner_ids: Sequence[uuid.UUID]) -> list[Learner]:
    query = (
        select(Learner)
        .where(Learner.customer_id == customer_id, Learner.id.in_(learner_ids))
        .order_by(Learner.created_at, Learner.id)
        .with_for_update()
    )
    learners = list((await session.execute(query)).scalars())
    missing = set(learner_ids) - {learner.id for learner in learners}
    if missing:
        raise NotFound(f"learner {sorted(map(str, missing))[0]} not found")
    inactive = [learner for learner in learners if not learner.active]
    if inactive:
        raise Conflict(
            f"learner {inactive[0].id} is deactivated in the customer's directory; reactivate it there first"
        )
    holding = [learner for learner in learners if learner.licence_status not in ALLOCATABLE]
    if holding:
        raise Conflict(
            f"learner {holding[0].id} already holds a licence; allocate only to expired or unlicensed learners"
        )
    return learners


async def _all_with_status(session: AsyncSession, customer_id: uuid.UUID, status: LearnerStatus) -> list[Learner]:
    query = (
        select(Learner)
        .where(Learner.customer_id == customer_id, Learner.licence_status == status.value, Learner.active.is_(True))
        .order_by(Learner.created_at, Learner.id)
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())


async def allocate(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    learner_ids: Sequence[uuid.UUID] | None,
    every: LearnerStatus | None,
    actor: Actor,
    now: datetime,
) -> list[Learner]:
    """A manager's allocation: to the chosen learners, or to every learner in status `every` (the "Select All"
    of the Expired Licences tab). All or nothing: too few free licences refuses the whole allocation."""
    if learner_ids is not None:
        learners = await _chosen(session, customer_id, learner_ids)
    else:
        assert every is not None
        learners = await _all_with_status(session, customer_id, every)
    # After the learners' locks, as a directory's change of a learner takes them (learner, then customer).
    await lock_customer(session, customer_id)
    free = await _free_licences(session, customer_id, now=now, count=len(learners))
    # What could be locked is what is free for us: on PostgreSQL another transaction may hold some for a moment.
    check_allocation(asked=len(learners), available=len(free))
    for learner, licence in zip(learners, free, strict=False):
        learner.licence_status = LearnerStatus.ACTIVE.value
        learner.licence_expires_at = licence.expires_at
    await _hold(session, [(learner.id, licence) for learner, licence in zip(learners, free, strict=False)], now=now)
    await audit.record_each_for_customer(
        session,
        customer_id=customer_id,
        actor=actor,
        action="licence.allocated",
        subject_type="learner",
        at=now,
        subjects=[
            (learner.id, {"licence_id": str(licence.id), "expires_at": licence.expires_at.isoformat()})
            for learner, licence in zip(learners, free, strict=False)
        ],
    )
    return learners


async def release_licence(session: AsyncSession, learner: Learner) -> uuid.UUID | None:
    """Free the learner's licence, if it holds one, with the term it has left; returns that licence."""
    freed = await session.execute(
        update(Licence)
        .where(Licence.learner_id == learner.id, Licence.status == LicenceStatus.ALLOCATED.value)
        .values(status=LicenceStatus.AVAILABLE.value, learner_id=None, allocated_at=None)
        .returning(Licence.id)
    )
    return freed.scalar_one_or_none()


async def delete_learner(
    session: AsyncSession, *, customer_id: uuid.UUID, learner_id: uuid.UUID, actor: Actor, now: datetime
) -> None:
    """Delete a learner and its training records; its licence is free again, with the term it had left."""
    learner = await get_learner(session, customer_id, learner_id, for_update=True)
    licence_id = await release_licence(session, learner)
    records = await session.execute(delete(TrainingRecord).where(TrainingRecord.learner_id == learner.id))
    await session.delete(learner)
    await audit.record_for_customer(
        session,
        customer_id=customer_id,
        actor=actor,
        action="learner.deleted",
        subject_type="learner",
        subject_id=learner.id,
        at=now,
        details={
            "freed_licence_id": str(licence_id) if licence_id else None,
            "training_records_deleted": affected(records),
        },
    )
