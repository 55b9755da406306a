"""Audit events, written in the same transaction as the change they describe."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditEvent, Customer
from payloads.common import Actor


def _row(
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID,
    at: datetime,
    partner_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    details: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "at": at,
        "actor_id": actor.user_id,
        "actor_role": actor.role.value,
        "manage_mode": actor.manage_mode,
        "on_behalf_of_customer_id": actor.on_behalf_of_customer_id,
        "partner_id": partner_id,
        "customer_id": customer_id,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "details": details or {},
    }


def record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID,
    at: datetime,
    partner_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(AuditEvent(**_row(actor, action, subject_type, subject_id, at, partner_id, customer_id, details)))


async def _partner_of(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    found = await session.execute(select(Customer.partner_id).where(Customer.id == customer_id))
    return found.scalar_one()


async def record_for_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID,
    at: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """An event about one customer's things, filed under the customer and its partner."""
    record(
        session,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        at=at,
        partner_id=await _partner_of(session, customer_id),
        customer_id=customer_id,
        details=details,
    )


async def record_each_for_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    actor: Actor,
    action: str,
    subject_type: str,
    at: datetime,
    subjects: Sequence[tuple[uuid.UUID, dict[str, Any]]],
) -> None:
    """One event per subject (its id and details), all filed under the customer and its partner, in one
    statement: for the thousands of learners of an import batch or an "allocate to all"."""
    if not subjects:
        return
    partner_id = await _partner_of(session, customer_id)
    rows = [_row(actor, action, subject_type, s, at, partner_id, customer_id, d) for s, d in subjects]
    await session.execute(insert(cast(Table, AuditEvent.__table__)), rows)
