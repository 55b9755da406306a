"""Demo data for the embedded stack: an operator, a partner with stock, a customer and their managers.

The demo tokens are kept in var/demo-tokens.json (a dev convenience) so that `make run` prints them again.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import directory
from db.models import User
from payloads.common import SYSTEM, Actor, Role


async def seed(sessions: async_sessionmaker[AsyncSession], saved: dict[str, str] | None) -> dict[str, str]:
    """Create the demo tenants, or return the saved tokens when they still open the door."""
    if saved is not None:
        async with sessions() as session:
            if await directory.user_by_token(session, saved["operator_token"]) is not None:
                return saved
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        operator, operator_token = await directory.create_user(
            session,
            email="operator@example.com",
            name="Olivia Operator",
            role=Role.OPERATOR,
            partner_id=None,
            customer_id=None,
            actor=SYSTEM,
            at=now,
        )
        as_operator = Actor(user_id=operator.id, role=Role.OPERATOR)
        partner = await directory.create_partner(session, name="Northwind Learning", actor=as_operator, at=now)
        await session.flush()
        await directory.credit_stock(
            session, partner_id=partner.id, quantity=100, reference="DEMO-PO-1", actor=as_operator, at=now
        )
        partner_manager, partner_token = await directory.create_user(
            session,
            email="pat@northwind.example",
            name="Pat Partner",
            role=Role.PARTNER_MANAGER,
            partner_id=partner.id,
            customer_id=None,
            actor=as_operator,
            at=now,
        )
        customer = await directory.create_customer(
            session,
            partner_id=partner.id,
            name="Contoso Ltd",
            account_type="premium",
            trial_licences=None,
            actor=_as(partner_manager),
            at=now,
        )
        await session.flush()
        _, customer_token = await directory.create_user(
            session,
            email="casey@contoso.example",
            name="Casey Customer",
            role=Role.CUSTOMER_MANAGER,
            partner_id=None,
            customer_id=customer.id,
            actor=_as(partner_manager),
            at=now,
        )
    demo = {
        "operator_token": operator_token,
        "partner_id": str(partner.id),
        "partner_manager_token": partner_token,
        "customer_id": str(customer.id),
        "customer_manager_token": customer_token,
    }
    return demo


def load_tokens(tokens_file: Path) -> dict[str, str] | None:
    return json.loads(tokens_file.read_text()) if tokens_file.exists() else None


def save_tokens(tokens_file: Path, tokens: dict[str, str]) -> None:
    tokens_file.write_text(json.dumps(tokens, indent=2))


def _as(user: User) -> Actor:
    return Actor(user_id=user.id, role=Role(user.role))
