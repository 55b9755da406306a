"""the update that decided an order

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 18:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("licence_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("decision_key", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("licence_orders", schema=None) as batch_op:
        batch_op.drop_column("decision_key")
