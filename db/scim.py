"""The customer's directory (SCIM "AD Sync"): its tokens, and learners provisioned, changed, deactivated and
reactivated by it. A deactivated learner keeps its history but frees its licence; reactivated, it comes back
unlicensed, for a manager to allocate by hand."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.directory import hash_token, lock_customer, new_token
from db.learners import NewLearner, create_learners, release_licence
from db.models import Customer, Learner, ScimToken
from payloads.common import Actor
from rules.errors import Conflict, NotFound
from rules.licences import LearnerSource, LearnerStatus


async def create_token(
    session: AsyncSession, *, customer_id: uuid.UUID, actor: Actor, at: datetime
) -> tuple[ScimToken, str]:
    assert actor.user_id is not None
    token = new_token()
    row = ScimToken(
        id=uuid.uuid4(),
        customer_id=customer_id,
        token_hash=hash_token(token),
        created_by_id=actor.user_id,
        created_at=at,
    )
    session.add(row)
    await audit.record_for_customer(
        session,
        customer_id=customer_id,
        actor=actor,
        action="scim_token.created",
        subject_type="scim_token",
        subject_id=row.id,
        at=at,
    )
    return row, token


async def revoke_token(
    session: AsyncSession, *, customer_id: uuid.UUID, token_id: uuid.UUID, actor: Actor, at: datetime
) -> None:
    # Under the row lock: of two revocations at once, one revokes (and records it), the other finds it revoked.
    row = await session.get(ScimToken, token_id, with_for_update=True, populate_existing=True)
    if row is None or row.customer_id != customer_id:
        raise NotFound(f"SCIM token {token_id} not found")
    if row.revoked_at is None:
        row.revoked_at = at
        await audit.record_for_customer(
            session,
            customer_id=customer_id,
            actor=actor,
            action="scim_token.revoked",
            subject_type="scim_token",
            subject_id=row.id,
            at=at,
        )


async def customer_for_token(session: AsyncSession, token: str) -> Customer | None:
    found = await session.execute(
        select(Customer)
        .join(ScimToken, ScimToken.customer_id == Customer.id)
        .where(ScimToken.token_hash == hash_token(token), ScimToken.revoked_at.is_(None))
    )
    return found.scalar_one_or_none()


@dataclass(frozen=True)
class DirectoryUser:
    """What the directory says of a person."""

    user_name: str
    email: str | None
    active: bool = True
    external_id: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    display_name: str | None = None
    formatted_name: str | None = None
    email_primary: bool | None = None  # as the directory marked the work email

    @property
    def learner_name(self) -> str:
        joined = " ".join(part for part in (self.given_name, self.family_name) if part)
        return (self.formatted_name or self.display_name or joined or self.user_name.split("@")[0])[:200]


def as_directory_user(learner: Learner) -> DirectoryUser:
    return DirectoryUser(
        user_name=learner.user_name or learner.email or str(learner.id),
        email=learner.email,
        active=learner.active,
        external_id=learner.external_id,
        given_name=learner.given_name,
        family_name=learner.family_name,
        display_name=learner.display_name,
        formatted_name=learner.formatted_name,
        email_primary=learner.email_primary,
    )


async def _refuse_taken(
    session: AsyncSession, customer_id: uuid.UUID, user: DirectoryUser, but: uuid.UUID | None
) -> None:
    # Under the customer's row lock: a directory sends requests side by side, and a userName is unique regardless
    # of case and against emails too, which no constraint expresses.
    await lock_customer(session, customer_id)
    user_name = user.user_name.lower()
    same = [func.lower(Learner.user_name) == user_name, Learner.email == user_name]
    if user.email:
        same.append(Learner.email == user.email.lower())
    query = select(Learner.id).where(Learner.customer_id == customer_id, or_(*same))
    if but is not None:
        query = query.where(Learner.id != but)
    if (await session.execute(query)).first():
        raise Conflict(f"a learner with userName {user.user_name} or email {user.email} already exists")


def _write(learner: Learner, user: DirectoryUser, now: datetime) -> None:
    learner.user_name = user.user_name
    learner.email = user.email.lower() if user.email else None
    learner.external_id = user.external_id
    learner.given_name, learner.family_name = user.given_name, user.family_name
    learner.display_name = user.display_name
    learner.formatted_name = user.formatted_name
    learner.email_primary = user.email_primary
    learner.name = user.learner_name
    learner.updated_at = now


async def provision(
    session: AsyncSession, *, customer_id: uuid.UUID, user: DirectoryUser, actor: Actor, now: datetime
) -> Learner:
    """A new person in the directory is a new learner, who takes a free licence automatically."""
    await _refuse_taken(session, customer_id, user, but=None)
    new = [
        NewLearner(
            email=user.email.lower() if user.email else None, name=user.learner_name, external_id=user.external_id
        )
    ]
    [created] = await create_learners(
        session, customer_id=customer_id, new=new, source=LearnerSource.SCIM, actor=actor, now=now
    )
    learner = await session.get_one(Learner, created.id)
    _write(learner, user, now)
    if not user.active:
        await _deactivate(session, learner, actor, now)
    return learner


async def change(
    session: AsyncSession, *, learner: Learner, user: DirectoryUser, actor: Actor, now: datetime
) -> Learner:
    """Apply the directory's view of a learner (PUT, or PATCH after its operations)."""
    if (user.user_name.lower(), user.email) != ((learner.user_name or learner.email or "").lower(), learner.email):
        await _refuse_taken(session, learner.customer_id, user, but=learner.id)
    was_active = learner.active
    _write(learner, user, now)
    if was_active and not user.active:
        await _deactivate(session, learner, actor, now)
    elif user.active and not was_active:
        learner.active = True
        await _audit(session, learner, actor, now, "learner.reactivated")
    else:
        await _audit(session, learner, actor, now, "learner.updated")
    return learner


async def _deactivate(session: AsyncSession, learner: Learner, actor: Actor, now: datetime) -> None:
    licence_id = await release_licence(session, learner)
    learner.active = False
    if learner.licence_status != LearnerStatus.EXPIRED.value:
        # A learner whose licence ran out held nothing to free and stays `expired` (with the day it ended): switched
        # back on, it is on the Expired Licences tab again, for a manager to renew.
        learner.licence_status = LearnerStatus.UNLICENSED.value
        learner.licence_expires_at = None
    await _audit(
        session,
        learner,
        actor,
        now,
        "learner.deactivated",
        {"freed_licence_id": str(licence_id) if licence_id else None},
    )


async def _audit(
    session: AsyncSession,
    learner: Learner,
    actor: Actor,
    now: datetime,
    action: str,
    details: dict[str, object] | None = None,
) -> None:
    await audit.record_for_customer(
        session,
        customer_id=learner.customer_id,
        actor=actor,
        action=action,
        subject_type="learner",
        subject_id=learner.id,
        at=now,
        details=details,
    )
