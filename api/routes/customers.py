"""A customer and its licences."""

import asyncio
import uuid
from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import select

from api import auth, block_workflows
from api.clock import now
from api.deps import CurrentUser, SessionDep, SessionsDep, TemporalDep
from api.errors import Forbidden
from api.schemas import BlockOut, CustomerLicences, CustomerOut
from db import directory
from db.models import LicenceBlock
from payloads.common import Actor

router = APIRouter(tags=["customers"])


@router.get("/customers/{customer_id}", response_model=CustomerOut)
async def get_customer(customer_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> CustomerOut:
    customer = await directory.get_customer(session, customer_id)
    auth.see_customer(caller, customer)
    return CustomerOut.model_validate(customer, from_attributes=True)


@router.get("/customers/{customer_id}/licences", response_model=CustomerLicences)
async def customer_licences(customer_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> CustomerLicences:
    """The customer's Licence section: counts (`total` = available + allocated + expired) and its blocks."""
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    at = now()
    counts = (await directory.licence_counts(session, [customer_id], now=at))[customer_id]
    blocks = (
        await session.execute(
            select(LicenceBlock).where(LicenceBlock.customer_id == customer_id).order_by(LicenceBlock.expires_at)
        )
    ).scalars()
    return CustomerLicences(total=sum(counts.values()), **counts, blocks=[block_out(b, at) for b in blocks])


def block_out(block: LicenceBlock, now: datetime) -> BlockOut:
    """A block as it stands: one whose term is over is shown expired at its end, as its expiry (the worker's
    write, late while no worker runs) will record it, and as allocation and the counts already treat it."""
    shown = BlockOut.model_validate(block, from_attributes=True)
    if block.status == "active" and block.expires_at <= now:
        return shown.model_copy(update={"status": "expired", "expired_at": block.expires_at})
    return shown


@router.post("/customers/{customer_id}/upgrade", response_model=CustomerOut)
async def upgrade_customer(
    customer_id: uuid.UUID, sessions: SessionsDep, caller: CurrentUser, temporal: TemporalDep
) -> CustomerOut:
    """Trial -> premium (its partner's managers). Every trial licence expires now; those learners become
    expired and wait for premium licences allocated by hand."""
    async with sessions.begin() as session:
        customer = await directory.get_customer(session, customer_id)
        auth.see_customer(caller, customer)
        if not caller.is_partner_manager_of(customer.partner_id):
            raise Forbidden("only the customer's partner may upgrade it")
        actor = Actor(user_id=caller.user_id, role=caller.role, manage_mode=True, on_behalf_of_customer_id=customer.id)
        trial_blocks = await directory.upgrade_customer(session, customer=customer, actor=actor, at=now())
    # No transaction open: the block workflows write. Each trial block ends at once, with or without its workflow.
    await asyncio.gather(*(block_workflows.expire_now(temporal, sessions, b, actor) for b in trial_blocks))
    return CustomerOut.model_validate(customer, from_attributes=True)
