"""The operator CLI: `licensing create-operator --email E`, and `licensing dev` for the embedded stack."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from email_validator import EmailNotValidError, validate_email

from db import directory
from db.migrate import upgrade_to_head
from db.session import create_engine, create_session_factory
from licensing.config import get_settings
from payloads.common import SYSTEM, Role
from rules.errors import Conflict

app = typer.Typer(help="Partner Licensing: operator commands.", no_args_is_help=True)


async def _create_operator(email: str, name: str) -> str:
    engine = create_engine(get_settings().database_url)
    try:
        async with create_session_factory(engine).begin() as session:
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
    finally:
        await engine.dispose()


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
    settings = get_settings()
    upgrade_to_head(settings.database_url)
    try:
        token = asyncio.run(_create_operator(email, name))
    except Conflict as refusal:
        typer.echo(f"error: {refusal.message}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(token)


@app.command()
def dev() -> None:
    """Run the whole embedded stack in the foreground (what `make run` does)."""
    from licensing import dev as stack

    stack.run(get_settings())


if __name__ == "__main__":
    app()
