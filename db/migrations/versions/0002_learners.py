"""learners, training records, licence holders, block expiry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 03:48:12.682324
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "learners",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("licence_status", sa.String(length=16), nullable=False),
        sa.Column("licence_expires_at", db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("licence_status IN ('active', 'expired', 'unlicensed')", name="learner_status_known"),
        sa.CheckConstraint("source IN ('manual', 'csv', 'scim')", name="learner_source_known"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "email"),
    )
    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.create_index(
            "ix_learners_customer_status", ["customer_id", "licence_status", "created_at"], unique=False
        )

    op.create_table(
        "training_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("learner_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("course", sa.String(length=300), nullable=False),
        sa.Column("completed_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score >= 0 AND score <= 100", name="score_in_range"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
        ),
        sa.ForeignKeyConstraint(["learner_id"], ["learners.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_training_records_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_training_records_learner_id"), ["learner_id"], unique=False)

    with op.batch_alter_table("licence_blocks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expired_at", db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("licences_expired", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("learners_expired", sa.Integer(), nullable=True))

    with op.batch_alter_table("licences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("learner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("allocated_at", db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint("uq_licences_learner_id", ["learner_id"])
        batch_op.create_foreign_key("fk_licences_learner_id_learners", "learners", ["learner_id"], ["id"])
        batch_op.create_check_constraint("allocated_iff_held", "(status = 'allocated') = (learner_id IS NOT NULL)")


def downgrade() -> None:
    with op.batch_alter_table("licences", schema=None) as batch_op:
        batch_op.drop_constraint("allocated_iff_held", type_="check")
        batch_op.drop_constraint("fk_licences_learner_id_learners", type_="foreignkey")
        batch_op.drop_constraint("uq_licences_learner_id", type_="unique")
        batch_op.drop_column("allocated_at")
        batch_op.drop_column("learner_id")

    with op.batch_alter_table("licence_blocks", schema=None) as batch_op:
        batch_op.drop_column("learners_expired")
        batch_op.drop_column("licences_expired")
        batch_op.drop_column("expired_at")

    with op.batch_alter_table("training_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_records_learner_id"))
        batch_op.drop_index(batch_op.f("ix_training_records_customer_id"))

    op.drop_table("training_records")
    with op.batch_alter_table("learners", schema=None) as batch_op:
        batch_op.drop_index("ix_learners_customer_status")

    op.drop_table("learners")
