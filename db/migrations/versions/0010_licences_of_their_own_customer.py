"""a licence's block and learner are of the licence's own customer, checked by the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 11:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Unique indexes, not constraints: SQLite adds an index without rebuilding the table.
    op.create_index("uq_licence_blocks_id_customer_id", "licence_blocks", ["id", "customer_id"], unique=True)
    op.create_index("uq_learners_id_customer_id", "learners", ["id", "customer_id"], unique=True)
    with op.batch_alter_table("licences", schema=None) as batch_op:
        batch_op.drop_constraint("fk_licences_learner_id_learners", type_="foreignkey")
        batch_op.create_foreign_key(
            "fk_licences_block_of_the_customer", "licence_blocks", ["block_id", "customer_id"], ["id", "customer_id"]
        )
        batch_op.create_foreign_key(
            "fk_licences_learner_of_the_customer", "learners", ["learner_id", "customer_id"], ["id", "customer_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("licences", schema=None) as batch_op:
        batch_op.drop_constraint("fk_licences_learner_of_the_customer", type_="foreignkey")
        batch_op.drop_constraint("fk_licences_block_of_the_customer", type_="foreignkey")
        batch_op.create_foreign_key("fk_licences_learner_id_learners", "learners", ["learner_id"], ["id"])
    op.drop_index("uq_learners_id_customer_id", table_name="learners")
    op.drop_index("uq_licence_blocks_id_customer_id", table_name="licence_blocks")
