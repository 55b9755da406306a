"""Partners, their stock, customers and users: the tenants and the people who act in them."""

import hashlib
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.blocks import upgraded_trial
from db.models import Customer, Licence, LicenceBlock, Partner, StockPurchase, User
from db.types import locks_rows
from payloads.common import Actor, Role
from rules.errors import Conflict, NotFound
from rules.licences import LicenceStatus

TOKEN_PREFIX = "lic_"


def hash_token(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough to make a stolen table useless."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def user_by_token(session: AsyncSession, token: str) -> User | None:
    found = await session.execute(
        select(User).where(User.token_hash == hash_token(token), User.access_removed_at.is_(None))
    )
    return found.scalar_one_or_none()


async def caller_by_token(session: AsyncSession, token: str) -> tuple[User, uuid.UUID | None] | None:
    """The token's user and, for a customer's manager, the customer's partner: one query per request."""
    found = await session.execute(
        select(User, Customer.partner_id)
        .outerjoin(Customer, Customer.id == User.customer_id)
        .where(User.token_hash == hash_token(token), User.access_removed_at.is_(None))
    )
    row = found.one_or_none()
    return None if row is None else (row[0], row[1])


async def create_partner(session: AsyncSession, *, name: str, actor: Actor, at: datetime) -> Partner:
    if (await session.execute(select(Partner.id).where(Partner.name == name))).first():
        raise Conflict(f"a partner named {name!r} already exists")
    partner = Partner(id=uuid.uuid4(), name=name, licence_stock=0, created_at=at)
    session.add(partner)
    audit.record(
        session,
        actor=actor,
        action="partner.created",
        subject_type="partner",
        subject_id=partner.id,
        at=at,
        partner_id=partner.id,
    )
    return partner


# The most licences a partner's stock can hold (the column is a 32-bit integer, as every licence count is).
MAX_STOCK = 2**31 - 1


async def credit_stock(
    session: AsyncSession, *, partner_id: uuid.UUID, quantity: int, reference: str, actor: Actor, at: datetime
) -> int:
    """Record the partner's purchase and add it to the stock; a purchase reference is credited only once."""
    already = await session.execute(
        select(StockPurchase.id).where(StockPurchase.partner_id == partner_id, StockPurchase.reference == reference)
    )
    if already.first():
        raise Conflict(f"purchase {reference!r} was already credited to this partner; use a new reference")
    assert actor.user_id is not None
    session.add(
        StockPurchase(
            partner_id=partner_id, quantity=quantity, reference=reference, created_by_id=actor.user_id, created_at=at
        )
    )
    credited = await session.execute(
        update(Partner)
        .where(Partner.id == partner_id, Partner.licence_stock <= MAX_STOCK - quantity)
        .values(licence_stock=Partner.licence_stock + quantity)
        .returning(Partner.licence_stock)
    )
    stock = credited.scalar_one_or_none()
    if stock is None:  # nothing is written: the purchase goes with the transaction
        held = (await session.execute(select(Partner.licence_stock).where(Partner.id == partner_id))).scalar_one()
        raise Conflict(
            f"the stock would be {held + quantity:,} licences, more than the {MAX_STOCK:,} a partner can hold "
            f"(it holds {held:,}); credit at most {MAX_STOCK - held:,}"
        )
    audit.record(
        session,
        actor=actor,
        action="licence_stock.credited",
        subject_type="partner",
        subject_id=partner_id,
        at=max(at, datetime.now(UTC)),  # when the stock moved (its row locked): the statement's order
        partner_id=partner_id,
        details={"quantity": quantity, "reference": reference, "licence_stock": stock},
    )
    return stock


async def create_customer(
    session: AsyncSession,
    *,
    partner_id: uuid.UUID,
    name: str,
    account_type: str,
    trial_licences: int | None,
    actor: Actor,
    at: datetime,
) -> Customer:
    taken = await session.execute(select(Customer.id).where(Customer.partner_id == partner_id, Customer.name == name))
    if taken.first():
        raise Conflict(f"this partner already has a customer named {name!r}")
    customer = Customer(
        id=uuid.uuid4(),
        partner_id=partner_id,
        name=name,
        account_type=account_type,
        trial_licences=trial_licences,
        created_at=at,
    )
    session.add(customer)
    audit.record(
        session,
        actor=actor,
        action="customer.created",
        subject_type="customer",
        subject_id=customer.id,
        at=at,
        partner_id=partner_id,
        customer_id=customer.id,
        details={"account_type": account_type, "trial_licences": trial_licences},
    )
    return customer


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    role: Role,
    partner_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    actor: Actor,
    at: datetime,
) -> tuple[User, str]:
    """Create a user and return it with its token, which is stored only as a hash."""
    email = email.lower()
    if (await session.execute(select(User.id).where(User.email == email))).first():
        raise Conflict(f"a user with email {email} already exists")
    token = new_token()
    user = User(
        id=uuid.uuid4(),
        email=email,
        name=name,
        role=role.value,
        partner_id=partner_id,
        customer_id=customer_id,
        token_hash=hash_token(token),
        created_at=at,
    )
    session.add(user)
    await _audit_user(session, user, actor=actor, action="user.created", at=at, details={"role": role.value})
    return user, token


async def _audit_user(
    session: AsyncSession, user: User, *, actor: Actor, action: str, at: datetime, details: dict[str, Any]
) -> None:
    """An event about a user, filed under the partner (and customer) the user works for."""
    owner_partner = user.partner_id
    if user.customer_id is not None:
        owner_partner = await session.scalar(select(Customer.partner_id).where(Customer.id == user.customer_id))
    audit.record(
        session,
        actor=actor,
        action=action,
        subject_type="user",
        subject_id=user.id,
        at=at,
        partner_id=owner_partner,
        customer_id=user.customer_id,
        details=details,
    )


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> tuple[User, uuid.UUID | None]:
    """The user, locked for the change about to be made, with the partner it works for (a customer manager's:
    its customer's)."""
    found = await session.execute(
        select(User, Customer.partner_id)
        .outerjoin(Customer, Customer.id == User.customer_id)
        .where(User.id == user_id)
        .with_for_update(of=User)
    )
    row = found.one_or_none()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    user, customer_partner = row
    return user, user.partner_id if customer_partner is None else customer_partner


async def remove_access(session: AsyncSession, user: User, *, actor: Actor, at: datetime) -> None:
    """The user's token stops working at once (it is replaced by one nobody holds) and the user gets no more
    emails or notifications; the user stays, as the actor of what it did. Removing it again changes nothing."""
    if user.access_removed_at is not None:
        return
    user.access_removed_at = at
    user.token_hash = hash_token(new_token())
    await _audit_user(session, user, actor=actor, action="user.access_removed", at=at, details={})


async def issue_token(session: AsyncSession, user: User, *, actor: Actor, at: datetime) -> str:
    """A new token for the user, shown once; the old one stops working. Restores a user whose access was removed."""
    token = new_token()
    restored = user.access_removed_at is not None
    user.token_hash = hash_token(token)
    user.access_removed_at = None
    await _audit_user(session, user, actor=actor, action="user.token_issued", at=at, details={"restored": restored})
    return token


async def get_partner(session: AsyncSession, partner_id: uuid.UUID) -> Partner:
    partner = await session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found")
    return partner


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} not found")
    return customer


async def lock_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Take the customer's row lock until the transaction ends (PostgreSQL; on SQLite the write transaction holds
    the database's lock already), so that checks over the customer's rows and the writes they allow are one step
    for each writer. `FOR NO KEY UPDATE` does not make rows that merely refer to the customer (its learners, its
    licences, its orders) wait."""
    if not locks_rows(session):
        return
    await session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update(key_share=True))


async def licence_counts(
    session: AsyncSession, customer_ids: list[uuid.UUID], *, now: datetime
) -> dict[uuid.UUID, dict[str, int]]:
    """`{customer_id: {available, allocated, expired}}` for the multi-tenant view, in one query. A licence whose
    term is over counts as expired at once, as allocation already treats it, though its block's expiry (the
    worker's write) has not run yet: a worker stopped across the moment leaves no licence "available" that no
    learner can be given."""
    counts: dict[uuid.UUID, dict[str, int]] = {
        cid: {"available": 0, "allocated": 0, "expired": 0} for cid in customer_ids
    }
    status = case(
        # Only a free one: a held licence stays allocated until its block's expiry frees it and makes its learner
        # `expired`, as the learner's own status, the Expired Licences tab and allocation still read it. A free
        # trial licence of a customer upgraded already is over too (allocation refuses it): the upgrade's expiry of
        # the block may not have landed yet.
        (
            and_(
                Licence.status == LicenceStatus.AVAILABLE.value,
                or_(Licence.expires_at <= now, upgraded_trial(LicenceBlock, Customer)),
            ),
            LicenceStatus.EXPIRED.value,
        ),
        else_=Licence.status,
    )
    rows = await session.execute(
        select(Licence.customer_id, status, func.count())
        .join(LicenceBlock, LicenceBlock.id == Licence.block_id)
        .join(Customer, Customer.id == Licence.customer_id)
        .where(Licence.customer_id.in_(customer_ids))
        .group_by(Licence.customer_id, status)
    )
    for customer_id, shown, count in rows:
        counts[customer_id][shown] += count
    return counts


async def upgrade_customer(session: AsyncSession, *, customer: Customer, actor: Actor, at: datetime) -> list[uuid.UUID]:
    """Make a trial customer premium; return its trial blocks still running, which must now expire."""
    # Read again under the row lock: of two upgrades at once, one upgrades (and records it), the other finds it done.
    await session.refresh(customer, ["account_type"], with_for_update={"key_share": True})
    if customer.account_type != "premium":
        customer.account_type = "premium"
        audit.record(
            session,
            actor=actor,
            action="customer.upgraded",
            subject_type="customer",
            subject_id=customer.id,
            at=at,
            partner_id=customer.partner_id,
            customer_id=customer.id,
            details={"account_type": "premium"},
        )
    running = await session.execute(
        select(LicenceBlock.id).where(
            LicenceBlock.customer_id == customer.id, LicenceBlock.kind == "trial", LicenceBlock.status == "active"
        )
    )
    return list(running.scalars())
