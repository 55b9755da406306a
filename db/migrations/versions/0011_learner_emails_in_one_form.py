"""learners' email addresses in one form (Unicode NFC, an IDNA domain in Unicode, lower case), as they are stored
since imports keep them in the API's form

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 15:30:00.000000

Imports used to keep an address as the file spelt it, in lower case: `lée@example.com` with a combining accent, or
a domain in punycode (`xn--...`), while the API and SCIM keep the library's normalised form. Such learners are
rewritten to that form, so that a later import or SCIM request finds them. Two learners of one customer whose
addresses are the same in that form (one person added twice) are left as they are and named in the log: which one
to keep (each may hold a licence and training records) is for a manager to say. The rows of imports still running
are rewritten too. Nothing to undo: the old spelling is not kept.
"""

import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from email_validator import EmailNotValidError, validate_email

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

_learners = sa.table("learners", sa.column("id"), sa.column("customer_id"), sa.column("email"))
_rows = sa.table("learner_import_rows", sa.column("import_id"), sa.column("row"), sa.column("email"))
_imports = sa.table("learner_imports", sa.column("id"), sa.column("status"))


def _in_one_form(email: str) -> str:
    """rules.emails.canonical as it stood when this migration was written (a migration does not change later)."""
    if email.isascii() and "xn--" not in email.lower():
        return email.lower()
    try:
        return validate_email(email, check_deliverability=False, test_environment=True).normalized.lower()
    except EmailNotValidError:
        return email


def _learners_to_rewrite(bind: sa.Connection) -> list[dict[str, Any]]:
    """The learners whose address changes, each with its new one; clashes are logged and left out."""
    spelt_otherwise = []
    found = bind.execute(
        sa.select(_learners.c.id, _learners.c.customer_id, _learners.c.email)
        .where(_learners.c.email.is_not(None))
        .execution_options(yield_per=10_000)  # this statement only: streamed, not held in memory at once
    )
    for learner_id, customer_id, email in found:
        if (wanted := _in_one_form(email)) != email:
            spelt_otherwise.append((learner_id, customer_id, wanted))
    changes, claimed = [], set()
    for learner_id, customer_id, wanted in spelt_otherwise:
        holder = bind.execute(
            sa.select(_learners.c.id).where(_learners.c.customer_id == customer_id, _learners.c.email == wanted)
        ).first()
        if holder is not None or (customer_id, wanted) in claimed:
            log.warning(
                "learner %s of customer %s is %s spelt another way, as another learner of the customer is: left as "
                "it is; delete one of the two (export its training records first)",
                learner_id,
                customer_id,
                wanted,
            )
            continue
        claimed.add((customer_id, wanted))
        changes.append({"learner_id": learner_id, "wanted": wanted})
    return changes


def upgrade() -> None:
    bind = op.get_bind()
    changes = _learners_to_rewrite(bind)
    if changes:
        bind.execute(
            sa.update(_learners)
            .where(_learners.c.id == sa.bindparam("learner_id"))
            .values(email=sa.bindparam("wanted")),
            changes,
        )
    running = sa.select(_imports.c.id).where(_imports.c.status == "running")
    rows = bind.execute(sa.select(_rows.c.import_id, _rows.c.row, _rows.c.email).where(_rows.c.import_id.in_(running)))
    pending = [
        {"import_id_": import_id, "row_": row, "wanted": wanted}
        for import_id, row, email in rows
        if (wanted := _in_one_form(email)) != email
    ]
    if pending:
        bind.execute(
            sa.update(_rows)
            .where(_rows.c.import_id == sa.bindparam("import_id_"), _rows.c.row == sa.bindparam("row_"))
            .values(email=sa.bindparam("wanted")),
            pending,
        )
    log.info("learners' addresses in one form: %d learners and %d import rows rewritten", len(changes), len(pending))


def downgrade() -> None:
    pass  # the old spellings are not kept; the new ones are valid for the schema before this revision too
