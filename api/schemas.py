"""Request and response bodies. Requests refuse unknown fields (422), so a client cannot set what it must not."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from api import clock
from payloads.common import Role
from rules import emails  # noqa: F401  (EmailStr accepts `.test` addresses: see rules/emails.py)
from rules.durations import parse_duration
from rules.text import one_line_problem, storable_problem


def _storable(text: str) -> str:
    if problem := storable_problem(text):
        raise ValueError(problem)
    return text


def _one_line(text: str) -> str:
    if problem := one_line_problem(text):
        raise ValueError(problem)
    return text


Storable = AfterValidator(_storable)
OneLine = AfterValidator(_one_line)  # names go into email subjects and lists, where a line break would cut them
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable, OneLine]
Reference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Storable, OneLine]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), Storable]
Course = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), Storable]
MAX_STOCK_CREDIT = 1_000_000


class Problem(BaseModel):
    """Every refusal: 400, 401, 403, 404, 409, 413, 422 (and 503 while a dependency is down)."""

    detail: str = Field(description="what went wrong, for the person who asked")


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
    access_removed_at: datetime | None = Field(
        default=None, description="set once the user's access was removed: its token no longer works"
    )


class UserCreated(UserOut):
    token: str = Field(description="shown once; only its hash is kept")


class CustomerCreate(Request):
    name: Name
    account_type: Literal["trial", "premium"]
    trial_licences: int | None = Field(default=None, strict=True, ge=1, le=1000)
    trial_term: str | None = Field(
        default=None,
        max_length=40,
        description="how long this customer's trial lasts, ISO 8601 (P30D, P1M); LICENSING_TRIAL_TERM when not "
        "given; no longer than a licence term (LICENSING_LICENCE_TERM)",
        examples=["P30D"],
    )

    @field_validator("trial_term")
    @classmethod
    def _a_duration(cls, trial_term: str | None) -> str | None:
        if trial_term is not None:
            parse_duration(trial_term)  # its refusal says what a duration looks like
        return trial_term


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


class NextExpiry(BaseModel):
    block_id: uuid.UUID
    kind: str
    quantity: int
    expires_at: datetime


class CustomerSummary(CustomerOut):
    licences: LicenceCounts
    next_expiry: NextExpiry | None = Field(
        description="the customer's running licence block that ends first: its next renewal; null with none running"
    )


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
    customer_name: str = Field(description="the customer's name, as Requested Orders lists it")
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
    expires_at: datetime = Field(description="when the term ends (or was to end, if the block expired early)")
    status: str
    expired_at: datetime | None = Field(description="when the block expired; null while it is active")
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
    read_at: datetime | None = Field(description="when the caller marked it read; null while unread")


class NotificationsRead(BaseModel):
    marked: int = Field(description="how many notifications were unread and are now read")


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


class StockMoveOut(BaseModel):
    id: uuid.UUID
    at: datetime
    kind: Literal["purchase", "assignment"] = Field(
        description="a purchase credited by an operator, or an order assigned to a customer"
    )
    change: int = Field(description="licences added to the stock (a purchase) or taken from it (an assignment)")
    licence_stock: int | None = Field(description="the stock this move left")
    reference: str | None = Field(description="a purchase's reference")
    order_id: uuid.UUID | None = Field(description="the licence order an assignment filled")
    customer_id: uuid.UUID | None = Field(description="the customer an assignment was for")
    customer_name: str | None
    by_id: uuid.UUID | None = Field(description="the user who credited or assigned")


class StockStatement(Page[StockMoveOut]):
    partner_id: uuid.UUID
    licence_stock: int = Field(description="the stock now")


class LearnerCreate(Request):
    email: EmailStr
    name: Name


class LearnerOut(BaseModel):
    id: uuid.UUID
    email: str | None = Field(description="null only for a person the customer's directory knows without a mailbox")
    name: str
    licence_status: Literal["active", "expired", "unlicensed"]
    licence_expires_at: datetime | None
    source: str
    active: bool = Field(description="false when the customer's directory deactivated the learner")
    created_at: datetime


class LearnerAdded(LearnerOut):
    note: str | None = Field(default=None, description="why the learner has no licence, when it has none")


class AllocationRequest(Request):
    """Either `learner_ids` (the chosen learners) or `all` (every expired, or every unlicensed, learner)."""

    learner_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=1000)
    all: Literal["expired", "unlicensed"] | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "AllocationRequest":
        if self.learner_ids is None and self.all is None:
            raise ValueError('say whom to allocate to: "learner_ids": [...] or "all": "expired" (or "unlicensed")')
        if self.learner_ids is not None and self.all is not None:
            raise ValueError('send either "learner_ids": [...] or "all": "expired" (or "unlicensed"), not both')
        if self.learner_ids is not None and len(set(self.learner_ids)) != len(self.learner_ids):
            raise ValueError("learner_ids: each learner may be listed once")
        return self


class AllocationOut(BaseModel):
    allocated: int
    learners: list[LearnerOut]


class TrainingRecordCreate(Request):
    course: Course
    completed_at: datetime = Field(
        description="when the course was completed: a date and time with its offset; a date alone is midnight UTC, "
        "a time without an offset is UTC"
    )
    score: int = Field(strict=True, ge=0, le=100)

    @field_validator("completed_at")
    @classmethod
    def _done(cls, completed_at: datetime) -> datetime:
        """A record tells of a course completed, so not later than now (give or take clocks a little apart)."""
        if completed_at.tzinfo is None:
            completed_at = completed_at.replace(tzinfo=UTC)
        try:
            completed_at = completed_at.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range: in UTC it falls before year 1 or after year 9999") from None
        if completed_at > clock.now() + CLOCK_SKEW:
            raise ValueError("is in the future; a training record is of a course already completed")
        return completed_at


CLOCK_SKEW = timedelta(minutes=5)


class TrainingRecordOut(BaseModel):
    id: uuid.UUID
    learner_id: uuid.UUID
    course: str
    completed_at: datetime
    score: int


class ImportRowError(BaseModel):
    row: int
    message: str


class ImportOut(BaseModel):
    id: uuid.UUID
    status: Literal["running", "finished"]
    filename: str
    total_rows: int
    processed_rows: int
    created: int
    licensed: int
    unlicensed: int
    failed: int
    errors: list[ImportRowError] = Field(description="refused rows, by row number (the header is row 1); at most 1000")
    created_at: datetime
    finished_at: datetime | None


class ScimTokenOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    revoked_at: datetime | None


class ScimTokenCreated(ScimTokenOut):
    token: str = Field(description="for /scim/v2 (Entra ID: Secret Token); shown once, only its hash is kept")
    scim_url: str = Field(description="the Tenant URL to give the directory")
