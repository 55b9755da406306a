"""Payloads of the licence-term workflow (`licence-block-{block_id}`) and its activities."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel

from payloads.common import Actor


class LicenceBlockInput(BaseModel):
    """Starts `licence-block-{block_id}`: the term of one block, from `starts_at` to `expires_at`."""

    block_id: uuid.UUID
    partner_id: uuid.UUID
    customer_id: uuid.UUID
    kind: str
    quantity: int
    starts_at: datetime
    expires_at: datetime
    renewal_reminders: list[str] = ["P30D", "P7D"]


class ExpireNow(BaseModel):
    """Early expiry (a trial customer upgraded to premium)."""

    actor: Actor
    reason: str = "the customer was upgraded to premium"


class ExpireBlock(BaseModel):
    block_id: uuid.UUID
    at: datetime
    actor: Actor
    reason: str


class BlockExpired(BaseModel):
    block_id: uuid.UUID
    expired_at: datetime
    licences_expired: int
    learners_expired: int


class BlockEvent(StrEnum):
    REMINDER = "reminder"
    EXPIRED = "expired"


class BlockNotice(BaseModel):
    block_id: uuid.UUID
    event: BlockEvent
    at: datetime
    offset: str | None = None  # which renewal reminder (P30D, P7D)
