"""Audit events, written in the same transaction as the change they describe."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AuditEvent, Customer
from payloads.common import Actor


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
    session.add(
        AuditEvent(
            at=at,
            actor_id=actor.user_id,
            actor_role=actor.role.value,
            manage_mode=actor.manage_mode,
            on_behalf_of_customer_id=actor.on_behalf_of_customer_id,
            partner_id=partner_id,
            customer_id=customer_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            details=details or {},
        )
    )


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
    customer = await session.get_one(Customer, customer_id)
    record(
        session,
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        at=at,
        partner_id=customer.partner_id,
        customer_id=customer_id,
        details=details,
    )
