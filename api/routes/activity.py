"""What happened: the caller's in-app notifications and the audit trail."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import func, literal, select, update

from api import auth, paging
from api.clock import now
from api.deps import CurrentUser, SessionDep
from api.schemas import AuditEventOut, NotificationOut, NotificationsRead, Page
from db import directory
from db.models import AuditEvent, Notification
from db.types import affected
from payloads.common import Role
from rules.errors import NotFound

router = APIRouter(tags=["activity"])

PARTNER_SUBJECT = "partner"


@router.get("/notifications", response_model=Page[NotificationOut])
async def notifications(
    session: SessionDep,
    caller: CurrentUser,
    unread: Annotated[bool, Query(description="only those not marked read yet")] = False,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[NotificationOut]:
    """The caller's in-app notifications, newest first."""
    query = select(Notification).where(Notification.user_id == caller.user_id)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    rows = list(
        (await session.execute(paging.newest_first(query, page, Notification.created_at, Notification.id))).scalars()
    )
    return Page(
        items=[NotificationOut.model_validate(n, from_attributes=True) for n in rows[: page.limit]],
        next_cursor=paging.next_cursor(rows, page, "created_at", "id"),
    )


@router.post("/notifications/{notification_id}/read", response_model=NotificationOut)
async def read_notification(notification_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> NotificationOut:
    """Mark one of the caller's notifications read (again: it keeps the time it was first read)."""
    async with session.begin():
        found = await session.execute(
            update(Notification)
            .where(Notification.id == notification_id, Notification.user_id == caller.user_id)
            .values(read_at=func.coalesce(Notification.read_at, literal(now(), Notification.read_at.type)))
            .returning(Notification)
        )
        notification = found.scalar_one_or_none()
        if notification is None:
            raise NotFound(f"notification {notification_id} not found")
        return NotificationOut.model_validate(notification, from_attributes=True)


@router.post("/notifications/read", response_model=NotificationsRead)
async def read_all_notifications(session: SessionDep, caller: CurrentUser) -> NotificationsRead:
    """Mark every unread notification of the caller read."""
    async with session.begin():
        marked = await session.execute(
            update(Notification)
            .where(Notification.user_id == caller.user_id, Notification.read_at.is_(None))
            .values(read_at=now())
        )
    return NotificationsRead(marked=affected(marked))


@router.get("/audit-events", response_model=Page[AuditEventOut])
async def audit_events(
    session: SessionDep,
    caller: CurrentUser,
    customer_id: Annotated[uuid.UUID | None, Query(description="only this customer's events")] = None,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[AuditEventOut]:
    """Who did what and when (and on whose behalf, in manage mode). Each caller sees its own tenant's trail."""
    query = select(AuditEvent)
    if customer_id is not None:
        auth.see_customer(caller, await directory.get_customer(session, customer_id))
        query = query.where(AuditEvent.customer_id == customer_id)
    elif caller.role is Role.PARTNER_MANAGER:
        query = query.where(AuditEvent.partner_id == caller.partner_id)
    elif caller.role is Role.CUSTOMER_MANAGER:
        query = query.where(AuditEvent.customer_id == caller.customer_id)
    if caller.role is Role.CUSTOMER_MANAGER:
        # The partner's own events (its stock debited for this customer's order) are filed under the customer
        # for the partner's view of it; the stock they show is the partner's business, not the customer's.
        query = query.where(AuditEvent.subject_type != PARTNER_SUBJECT)
    rows = list((await session.execute(paging.newest_first(query, page, AuditEvent.at, AuditEvent.id))).scalars())
    return Page(
        items=[AuditEventOut.model_validate(e, from_attributes=True) for e in rows[: page.limit]],
        next_cursor=paging.next_cursor(rows, page, "at", "id"),
    )
