"""What happened: the caller's in-app notifications and the audit trail."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from api import auth, paging
from api.deps import CurrentUser, SessionDep
from api.schemas import AuditEventOut, NotificationOut, Page
from db import directory
from db.models import AuditEvent, Notification
from payloads.common import Role

router = APIRouter(tags=["activity"])

PARTNER_SUBJECT = "partner"


@router.get("/notifications", response_model=Page[NotificationOut])
async def notifications(
    session: SessionDep, caller: CurrentUser, page: paging.PageRequest = Depends(paging.page_request)
) -> Page[NotificationOut]:
    """The caller's in-app notifications, newest first."""
    query = select(Notification).where(Notification.user_id == caller.user_id)
    rows = list(
        (await session.execute(paging.newest_first(query, page, Notification.created_at, Notification.id))).scalars()
    )
    return Page(
        items=[NotificationOut.model_validate(n, from_attributes=True) for n in rows[: page.limit]],
        next_cursor=paging.next_cursor(rows, page, "created_at", "id"),
    )


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
