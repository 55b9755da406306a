"""Factories: tenants and people, made through the same data functions the API uses."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import blocks, directory, learners
from db.models import AuditEvent, Learner, LicenceBlock
from payloads.blocks import ExpireBlock
from payloads.common import SYSTEM, Actor, Role
from rules.licences import BlockKind, LearnerSource


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Tenant:
    """A partner with stock, one customer, and a manager on each side."""

    partner_id: uuid.UUID
    customer_id: uuid.UUID
    partner_manager: Person
    customer_manager: Person


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def person(
    sessions: async_sessionmaker[AsyncSession],
    role: Role,
    *,
    partner_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
) -> Person:
    async with sessions.begin() as session:
        user, token = await directory.create_user(
            session,
            email=f"{_unique(role.value)}@example.com",
            name=f"Test {role.value}",
            role=role,
            partner_id=partner_id,
            customer_id=customer_id,
            actor=SYSTEM,
            at=datetime.now(UTC),
        )
    return Person(id=user.id, email=user.email, token=token)


async def tenant(sessions: async_sessionmaker[AsyncSession], *, stock: int = 100) -> Tenant:
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        partner = await directory.create_partner(session, name=_unique("Partner"), actor=SYSTEM, at=now)
        customer = await directory.create_customer(
            session,
            partner_id=partner.id,
            name=_unique("Customer"),
            account_type="premium",
            trial_licences=None,
            actor=SYSTEM,
            at=now,
        )
    if stock:
        await credit(sessions, partner.id, stock)
    return Tenant(
        partner_id=partner.id,
        customer_id=customer.id,
        partner_manager=await person(sessions, Role.PARTNER_MANAGER, partner_id=partner.id),
        customer_manager=await person(sessions, Role.CUSTOMER_MANAGER, customer_id=customer.id),
    )


async def credit(sessions: async_sessionmaker[AsyncSession], partner_id: uuid.UUID, quantity: int) -> int:
    """An operator's credit of the partner's stock (the partner's purchase)."""
    operator = await person(sessions, Role.OPERATOR)
    async with sessions.begin() as session:
        return await directory.credit_stock(
            session,
            partner_id=partner_id,
            quantity=quantity,
            reference=_unique("PO"),
            actor=Actor(user_id=operator.id, role=Role.OPERATOR),
            at=datetime.now(UTC),
        )


async def block(sessions: async_sessionmaker[AsyncSession], tenant: Tenant, *, quantity: int, days: int) -> datetime:
    """Licences straight into the customer's pool, expiring in `days` days; returns their `expires_at`."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        made = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=quantity,
            starts_at=now,
            expires_at=now + timedelta(days=days),
        )
    return made.expires_at


async def expire_customer_blocks(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    """What the licence-term workflow does at the end of the term, for every running block of the customer."""
    async with sessions() as session:
        running = (
            (
                await session.execute(
                    select(LicenceBlock.id).where(
                        LicenceBlock.customer_id == tenant.customer_id, LicenceBlock.status == "active"
                    )
                )
            )
            .scalars()
            .all()
        )
    for block_id in running:
        await blocks.expire_block(
            sessions, ExpireBlock(block_id=block_id, at=datetime.now(UTC), actor=SYSTEM, reason="test: term ended")
        )


async def short_block_with_a_learner(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, *, seconds: int
) -> LicenceBlock:
    """Two licences expiring in `seconds`, one of them held by a new learner: a term for restart tests."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        made = await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=2,
            starts_at=now,
            expires_at=now + timedelta(seconds=seconds),
        )
        await learners.add_learner(
            session,
            customer_id=tenant.customer_id,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            name="Lee",
            source=LearnerSource.MANUAL,
            actor=SYSTEM,
            now=now,
        )
    return made


async def scalar(sessions: async_sessionmaker[AsyncSession], query: Select[Any]) -> int:
    """The one number a query selects (a count, a stock), read in a session of its own."""
    async with sessions() as session:
        return int((await session.execute(query)).scalar_one())


async def learner(
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    *,
    email: str | None = None,
    now: datetime | None = None,
) -> Learner:
    """A learner added by hand, as the API adds one (it takes a free licence if there is one)."""
    async with sessions.begin() as session:
        return await learners.add_learner(
            session,
            customer_id=tenant.customer_id,
            email=email or f"{uuid.uuid4().hex[:8]}@example.com",
            name="Lee",
            source=LearnerSource.MANUAL,
            actor=SYSTEM,
            now=now or datetime.now(UTC),
        )


async def manage_mode_of_import(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> tuple[object, ...]:
    """Who the customer's one imported learner's `learner.created` event names: actor, manage mode, on behalf of."""
    async with sessions() as session:
        [created] = (
            await session.execute(
                select(AuditEvent).where(
                    AuditEvent.customer_id == tenant.customer_id, AuditEvent.action == "learner.created"
                )
            )
        ).scalars()
    return created.actor_id, created.manage_mode, created.on_behalf_of_customer_id


async def block_id(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> uuid.UUID:
    """The id of the customer's one licence block (made by `block`)."""
    async with sessions() as session:
        return (
            await session.execute(select(LicenceBlock.id).where(LicenceBlock.customer_id == tenant.customer_id))
        ).scalar_one()
