"""Request and response bodies. Requests refuse unknown fields (422), so a client cannot set what it must not."""

import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from payloads.common import Role

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
MAX_STOCK_CREDIT = 1_000_000


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PartnerCreate(Request):
    name: Name


class PartnerOut(BaseModel):
    id: uuid.UUID
    name: str
    licence_stock: int


class StockCredit(Request):
    quantity: int = Field(strict=True, ge=1, le=MAX_STOCK_CREDIT, description="licences bought")
    reference: Reference = Field(description="the purchase reference; each is credited once")


class StockOut(BaseModel):
    partner_id: uuid.UUID
    licence_stock: int


class UserCreate(Request):
    email: EmailStr
    name: Name
    role: Literal[Role.OPERATOR, Role.PARTNER_MANAGER, Role.CUSTOMER_MANAGER]
    partner_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    partner_id: uuid.UUID | None
    customer_id: uuid.UUID | None


class UserCreated(UserOut):
    token: str = Field(description="shown once; only its hash is kept")


class CustomerCreate(Request):
    name: Name
    account_type: Literal["trial", "premium"]
    trial_licences: int | None = Field(default=None, strict=True, ge=1, le=1000)


class CustomerOut(BaseModel):
    id: uuid.UUID
    name: str
    partner_id: uuid.UUID
    account_type: str
    trial_licences: int | None
    created_at: datetime


class LicenceCounts(BaseModel):
    total: int
    available: int
    allocated: int
    expired: int


class CustomerSummary(CustomerOut):
    licences: LicenceCounts


class OrderCreate(Request):
    quantity: int = Field(strict=True, ge=1, description="licences requested (at most LICENSING_MAX_ORDER_QUANTITY)")


class OrderReject(Request):
    reason: Reason


class BlockRef(BaseModel):
    id: uuid.UUID
    expires_at: datetime


class OrderOut(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    partner_id: uuid.UUID
    quantity: int
    status: str
    requested_at: datetime
    requested_by_id: uuid.UUID
    decided_at: datetime | None
    decided_by_id: uuid.UUID | None
    reject_reason: str | None
    block: BlockRef | None


class BlockOut(BaseModel):
    id: uuid.UUID
    kind: str
    quantity: int
    starts_at: datetime
    expires_at: datetime
    status: str
    order_id: uuid.UUID | None


class CustomerLicences(LicenceCounts):
    blocks: list[BlockOut]


class NotificationOut(BaseModel):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    subject_type: str
    subject_id: uuid.UUID
    created_at: datetime


class AuditEventOut(BaseModel):
    id: uuid.UUID
    at: datetime
    actor_id: uuid.UUID | None
    actor_role: str
    manage_mode: bool
    on_behalf_of_customer_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    action: str
    subject_type: str
    subject_id: uuid.UUID
    details: dict[str, object]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")
