"""an idempotency key whose request failed on our side keeps its fingerprint

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 18:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("idempotent_requests", schema=None) as batch_op:
        batch_op.drop_constraint("idempotency_status_known", type_="check")
        batch_op.create_check_constraint("idempotency_status_known", "status IN ('running', 'done', 'failed')")


def downgrade() -> None:
    op.execute("DELETE FROM idempotent_requests WHERE status = 'failed'")
    with op.batch_alter_table("idempotent_requests", schema=None) as batch_op:
        batch_op.drop_constraint("idempotency_status_known", type_="check")
        batch_op.create_check_constraint("idempotency_status_known", "status IN ('running', 'done')")
