"""The operator CLI, `licensing`. It works through the same data functions and workflows as the API."""

import asyncio
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from db import directory
from db.migrate import upgrade_to_head
from licensing import operator
from licensing.config import get_settings
from licensing.leaving import run_then_leave
from mail.smtp import PermanentFailure, TemporaryFailure
from payloads.common import SYSTEM, Role
from rules.emails import EmailNotValidError, validate_email
from rules.errors import LicensingError
from rules.wording import counted

app = typer.Typer(help="Partner Licensing: operator commands.", no_args_is_help=True)
console = Console()
T = TypeVar("T")
By = Annotated[str, typer.Option("--by", help="the email of the operator doing this (recorded in the audit trail)")]
Uploader = Annotated[
    str,
    typer.Option(
        "--by", help="the email of a manager of the customer, or of its partner's (recorded in the audit trail)"
    ),
]


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run one command's work; a refusal is printed for a person and exits 1."""
    try:
        return asyncio.run(work)
    except LicensingError as refusal:
        typer.echo(f"error: {refusal.message}", err=True)
        raise typer.Exit(code=1) from None
    except (TemporaryFailure, PermanentFailure) as problem:
        typer.echo(f"error: the SMTP server refused: {problem}", err=True)
        raise typer.Exit(code=1) from None


async def _create_operator(email: str, name: str) -> str:
    async with operator.database(get_settings()) as sessions, sessions.begin() as session:
        _, token = await directory.create_user(
            session,
            email=email,
            name=name,
            role=Role.OPERATOR,
            partner_id=None,
            customer_id=None,
            actor=SYSTEM,
            at=datetime.now(UTC),
        )
    return token


@app.command("create-operator")
def create_operator(
    email: Annotated[str, typer.Option(help="the operator's email address")],
    name: Annotated[str, typer.Option(help="the operator's name")] = "Operator",
) -> None:
    """Create an operator and print its token (shown once; only its hash is stored)."""
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as problem:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(code=2) from None
    upgrade_to_head(get_settings().database_url)
    typer.echo(_run(_create_operator(email, name)))


@app.command("issue-token")
def issue_token(email: Annotated[str, typer.Option(help="the user's email address")]) -> None:
    """Print a new token for a user (an operator who lost theirs); the old one stops working. Restores a user
    whose access was removed."""
    upgrade_to_head(get_settings().database_url)
    typer.echo(_run(operator.issue_token(get_settings(), email)))


@app.command()
def partners() -> None:
    """List the partners and their licence stock."""
    table = Table("id", "name", "licence stock")
    for partner in _run(operator.partners(get_settings())):
        table.add_row(str(partner.id), escape(partner.name), str(partner.licence_stock))
    console.print(table)


@app.command("create-partner")
def create_partner(name: str, by: By) -> None:
    """Create a partner (with no stock yet)."""
    partner = _run(operator.create_partner(get_settings(), name, by))
    typer.echo(str(partner.id))


@app.command("credit-stock")
def credit_stock(
    partner_id: uuid.UUID,
    quantity: Annotated[int, typer.Argument(min=1, max=1_000_000, help="licences bought")],
    reference: Annotated[str, typer.Option(help="the purchase reference; each is credited once")],
    by: By,
) -> None:
    """Credit a partner's licence stock with a purchase."""
    stock = _run(operator.credit_stock(get_settings(), partner_id, quantity, reference, by))
    typer.echo(f"licence stock is now {stock}")


@app.command("requested-orders")
def requested_orders(partner_id: uuid.UUID) -> None:
    """A partner's Requested Orders: what waits for its managers to assign or reject."""
    table = Table("order", "customer", "customer id", "licences", "requested at")
    for order, customer in _run(operator.requested_orders(get_settings(), partner_id)):
        table.add_row(
            str(order.id), escape(customer), str(order.customer_id), str(order.quantity), order.requested_at.isoformat()
        )
    console.print(table)


@app.command()
def licences(customer_id: uuid.UUID) -> None:
    """A customer's licences: the counts, and each block with its term."""
    found = _run(operator.customer_licences(get_settings(), customer_id))
    counts = found.counts
    console.print(
        f"total {sum(counts.values())}: available {counts['available']}, allocated {counts['allocated']}, "
        f"expired {counts['expired']}"
    )
    table = Table("block", "kind", "licences", "starts", "expires", "status")
    for block in found.blocks:
        table.add_row(
            str(block.id),
            block.kind,
            str(block.quantity),
            block.starts_at.isoformat(),
            block.expires_at.isoformat(),
            found.status_of(block),
        )
    console.print(table)


@app.command("import-csv")
def import_csv(
    customer_id: uuid.UUID, path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)], by: Uploader
) -> None:
    """Import a CSV of learners (email,name) for a customer, with a progress bar. The worker must be running."""
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("rows", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = _run(operator.import_csv(get_settings(), customer_id, path, by, show))
    console.print(
        f"{counted(result.created, 'learner')} created ({result.licensed} licensed, {result.unlicensed} "
        f"unlicensed), {counted(result.failed, 'row')} refused; "
        f"see GET /api/v1/customers/{customer_id}/learner-imports/{result.import_id}"
    )


@app.command("failed-emails")
def failed_emails() -> None:
    """Emails the SMTP server refused for good (or after every retry)."""
    table = Table("id", "to", "subject", "attempts", "last error")
    for email in _run(operator.failed_emails(get_settings())):
        table.add_row(
            str(email.id),
            escape(email.recipient),
            escape(email.subject),
            str(email.attempts),
            escape(email.last_error or ""),
        )
    console.print(table)


@app.command("resend-email")
def resend_email(email_id: uuid.UUID) -> None:
    """Send a failed email again once its cause is fixed (same message, same Message-ID)."""
    _run(operator.resend_email(get_settings(), email_id))
    typer.echo("sent")


@app.command()
def reconcile(
    everything: Annotated[bool, typer.Option("--all", help="check every running block, not only recent ones")] = False,
) -> None:
    """Start the workflows that a Temporal outage kept from starting (licence terms, imports) and those of waiting
    orders terminated by hand. Safe to repeat."""
    done = _run(operator.reconcile(get_settings(), everything=everything))
    typer.echo(
        f"checked {done.terms} licence terms and {done.imports} imports; "
        f"started {done.terms_started} missing licence terms and {done.imports_started} missing imports; "
        f"ended {done.trials_ended} trial blocks of upgraded customers; "
        f"checked {done.orders} waiting orders, started {done.orders_resumed} again; "
        f"started {done.terms_started_again} ended licence terms of running blocks again"
    )


@app.command()
def dev() -> None:
    """Run the whole embedded stack in the foreground (what `make run` does)."""
    from licensing import dev as stack

    stack.run(get_settings())


def main() -> None:
    """The `licensing` command: the commands above, then out without the interpreter's finalisation."""
    run_then_leave(app)


if __name__ == "__main__":
    main()
