"""a licence's block and learner are of the licence's own customer, checked by the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 11:00:00.000000
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Licences whose block, or whose learner, is of another customer than the licence's own: the rows the new foreign
# keys refuse. PostgreSQL would refuse to add the keys with a bare violation; SQLite, which copies the table, would
# not check them at all. Both are told which rows stand in the way instead.
ACROSS_CUSTOMERS = """
SELECT licences.id, licences.customer_id, licences.block_id, licences.learner_id FROM licences
WHERE EXISTS (SELECT 1 FROM licence_blocks AS b WHERE b.id = licences.block_id AND b.customer_id <> licences.customer_id)
   OR EXISTS (SELECT 1 FROM learners AS l WHERE l.id = licences.learner_id AND l.customer_id <> licences.customer_id)
"""


def _refuse_licences_across_customers() -> None:
    found = op.get_bind().execute(sa.text(ACROSS_CUSTOMERS)).all()
    if found:
        shown = ", ".join(str(uuid.UUID(str(row.id))) for row in found[:10])  # SQLite keeps them as hex
        raise RuntimeError(
            "Licences that belong to a block, or are held by a learner, of another customer than their own: "
            f"{len(found)} ({shown}{', ...' if len(found) > 10 else ''}). This upgrade makes the database refuse "
            "such licences and cannot run until they are corrected (for instance freed: status 'available', no "
            f"learner_id, if the block is the licence's own). They are the rows of: {' '.join(ACROSS_CUSTOMERS.split())}"
        )


def upgrade() -> None:
    _refuse_licences_across_customers()
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
