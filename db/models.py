"""SQLAlchemy models: one row per licence, explicit states, constraints that hold whatever runs at once."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 (a ClassVar of DeclarativeBase)


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


class Partner(Base):
    __tablename__ = "partners"
    __table_args__ = (CheckConstraint("licence_stock >= 0", name="licence_stock_not_negative"),)

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    licence_stock: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class StockPurchase(Base):
    """One credit of a partner's licence stock by an operator; the reference makes a repeat harmless."""

    __tablename__ = "stock_purchases"
    __table_args__ = (
        UniqueConstraint("partner_id", "reference"),
        CheckConstraint("quantity > 0", name="purchase_quantity_positive"),
    )

    id: Mapped[uuid.UUID] = _id()
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    quantity: Mapped[int]
    reference: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        UniqueConstraint("partner_id", "name"),
        CheckConstraint("account_type IN ('trial', 'premium')", name="account_type_known"),
    )

    id: Mapped[uuid.UUID] = _id()
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    account_type: Mapped[str] = mapped_column(String(16))
    trial_licences: Mapped[int | None]
    created_at: Mapped[datetime]


class User(Base):
    """An operator, a partner manager (of one partner) or a customer manager (of one customer)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "(role = 'operator' AND partner_id IS NULL AND customer_id IS NULL)"
            " OR (role = 'partner_manager' AND partner_id IS NOT NULL AND customer_id IS NULL)"
            " OR (role = 'customer_manager' AND customer_id IS NOT NULL AND partner_id IS NULL)",
            name="role_matches_scope",
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("partners.id"), index=True)
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    # Set when an operator or the partner removed the user's access: its token no longer works (it was replaced
    # by one nobody holds), it gets no emails or notifications. A new token (POST /users/{id}/token) restores it.
    access_removed_at: Mapped[datetime | None]


class LicenceOrder(Base):
    __tablename__ = "licence_orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="order_quantity_positive"),
        CheckConstraint("status IN ('requested', 'assigned', 'rejected', 'cancelled')", name="order_status_known"),
        Index("ix_licence_orders_partner_status", "partner_id", "status", "requested_at"),
        Index("ix_licence_orders_customer", "customer_id", "requested_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("partners.id"))
    quantity: Mapped[int]
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime]
    requested_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    reject_reason: Mapped[str | None] = mapped_column(Text)
    # The workflow update that made the decision: the same decision run again is recognised by it.
    decision_key: Mapped[str | None] = mapped_column(String(200))


class LicenceBlock(Base):
    """The licences of one assigned order (or of a trial); they all expire together at `expires_at`."""

    __tablename__ = "licence_blocks"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="block_quantity_positive"),
        CheckConstraint("kind IN ('premium', 'trial')", name="block_kind_known"),
        CheckConstraint("status IN ('active', 'expired')", name="block_status_known"),
        CheckConstraint("expires_at > starts_at", name="block_term_positive"),
        # What a licence's foreign key to its block and its customer points at, together (see Licence).
        Index("uq_licence_blocks_id_customer_id", "id", "customer_id", unique=True),
    )

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    order_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("licence_orders.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[int]
    starts_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="active")
    expired_at: Mapped[datetime | None]
    licences_expired: Mapped[int | None]
    learners_expired: Mapped[int | None]


class Licence(Base):
    """One seat. `available -> allocated -> available | expired`. A licence is held by at most one learner (one
    column), and a learner holds at most one licence (the unique index on `learner_id`). Its block and its learner
    are of its own customer: each foreign key takes the customer with the id, so the database itself refuses a
    licence handed to another company's learner, whatever the code above it does."""

    __tablename__ = "licences"
    __table_args__ = (
        CheckConstraint("status IN ('available', 'allocated', 'expired')", name="licence_status_known"),
        CheckConstraint("(status = 'allocated') = (learner_id IS NOT NULL)", name="allocated_iff_held"),
        UniqueConstraint("learner_id", name="uq_licences_learner_id"),
        Index("ix_licences_customer_status_expiry", "customer_id", "status", "expires_at"),
        ForeignKeyConstraint(
            ["block_id", "customer_id"],
            ["licence_blocks.id", "licence_blocks.customer_id"],
            name="fk_licences_block_of_the_customer",
        ),
        ForeignKeyConstraint(
            ["learner_id", "customer_id"],
            ["learners.id", "learners.customer_id"],
            name="fk_licences_learner_of_the_customer",
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    block_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licence_blocks.id"), index=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(16), default="available")
    expires_at: Mapped[datetime]
    learner_id: Mapped[uuid.UUID | None]
    allocated_at: Mapped[datetime | None]


class Learner(Base):
    """A member of a customer's staff who takes courses. `licence_status`: active, expired or unlicensed."""

    __tablename__ = "learners"
    __table_args__ = (
        UniqueConstraint("customer_id", "email"),
        CheckConstraint("licence_status IN ('active', 'expired', 'unlicensed')", name="learner_status_known"),
        CheckConstraint("source IN ('manual', 'csv', 'scim')", name="learner_source_known"),
        Index("ix_learners_customer_status", "customer_id", "licence_status", "created_at"),
        Index("ix_learners_customer_external_id", "customer_id", "external_id"),
        UniqueConstraint("customer_id", "user_name", name="uq_learners_customer_user_name"),
        # What a licence's foreign key to its learner and its customer points at, together (see Licence).
        Index("uq_learners_id_customer_id", "id", "customer_id", unique=True),
    )

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    # Learners added by hand or by CSV always have one; a directory may provision a person without a mailbox.
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))
    licence_status: Mapped[str] = mapped_column(String(16))
    licence_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    # The directory's view (SCIM): a deactivated learner keeps its history but holds no licence.
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    external_id: Mapped[str | None] = mapped_column(String(300))
    user_name: Mapped[str | None] = mapped_column(String(320))  # SCIM userName (Entra: the UPN) when not the email
    given_name: Mapped[str | None] = mapped_column(String(200))
    family_name: Mapped[str | None] = mapped_column(String(200))
    display_name: Mapped[str | None] = mapped_column(String(200))
    formatted_name: Mapped[str | None] = mapped_column(String(200))
    email_primary: Mapped[bool | None]
    updated_at: Mapped[datetime | None]


class ScimToken(Base):
    """A customer's directory (Entra ID) calls /scim/v2 with this token; stored hashed, revocable."""

    __tablename__ = "scim_tokens"

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class LearnerImport(Base):
    """A CSV upload and its progress; its rows wait in `learner_import_rows` for the import workflow."""

    __tablename__ = "learner_imports"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'finished')", name="import_status_known"),
        Index("ix_learner_imports_customer", "customer_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    filename: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    total_rows: Mapped[int]
    processed_rows: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    licensed: Mapped[int] = mapped_column(default=0)
    unlicensed: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class LearnerImportRow(Base):
    """One data row of an uploaded CSV, numbered as a spreadsheet shows it (the header is row 1)."""

    __tablename__ = "learner_import_rows"
    __table_args__ = (Index("ix_learner_import_rows_email", "import_id", "email"),)

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner_imports.id", ondelete="CASCADE"), primary_key=True)
    row: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(400))
    name: Mapped[str] = mapped_column(String(400))


class LearnerImportError(Base):
    __tablename__ = "learner_import_errors"

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learner_imports.id", ondelete="CASCADE"), primary_key=True)
    row: Mapped[int] = mapped_column(primary_key=True)
    message: Mapped[str] = mapped_column(String(500))


class TrainingRecord(Base):
    """One completed course of a learner; deleted with the learner."""

    __tablename__ = "training_records"
    __table_args__ = (CheckConstraint("score >= 0 AND score <= 100", name="score_in_range"),)

    id: Mapped[uuid.UUID] = _id()
    learner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("learners.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    course: Mapped[str] = mapped_column(String(300))
    completed_at: Mapped[datetime]
    score: Mapped[int]
    created_at: Mapped[datetime]


class Notification(Base):
    """An in-app notification; the key makes a retried activity write it once."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("user_id", "key"), Index("ix_notifications_user", "user_id", "created_at"))

    id: Mapped[uuid.UUID] = _id()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]  # when its user marked it read; None while unread


class AuditEvent(Base):
    """Who did what, when, and on whose behalf in manage mode. Written in the transaction of the change."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_customer", "customer_id", "at"),
        Index("ix_audit_events_partner", "partner_id", "at"),
    )

    id: Mapped[uuid.UUID] = _id()
    at: Mapped[datetime]
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    actor_role: Mapped[str] = mapped_column(String(32))
    manage_mode: Mapped[bool] = mapped_column(default=False)
    on_behalf_of_customer_id: Mapped[uuid.UUID | None]
    partner_id: Mapped[uuid.UUID | None]
    customer_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[uuid.UUID]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutboxEmail(Base):
    """One email to one recipient, keyed by its business key (`order-42:assigned:<user>`), sent at most once."""

    __tablename__ = "outbox_emails"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="email_status_known"),
        Index("ix_outbox_emails_status", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    key: Mapped[str] = mapped_column(String(300), unique=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # The sending attempt that holds the message while it is `pending`, and until when (`db.outbox`): of two
    # attempts at once, one sends it; the claim of an attempt that died lapses.
    claimed_by: Mapped[uuid.UUID | None]
    claimed_until: Mapped[datetime | None]


class IdempotentRequest(Base):
    """The first answer to a POST sent with an Idempotency-Key, kept for 24 hours per caller."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (CheckConstraint("status IN ('running', 'done', 'failed')", name="idempotency_status_known"),)

    caller: Mapped[str] = mapped_column(String(64), primary_key=True)  # a hash of the caller's token
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(index=True)  # the key's first use: it is kept 24 hours from then
    claimed_at: Mapped[datetime | None]  # when its current attempt began (None: at `created_at`)
