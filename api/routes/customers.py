"""A customer and its licences."""

import uuid

from fastapi import APIRouter
from sqlalchemy import select

from api import auth
from api.deps import CurrentUser, SessionDep
from api.schemas import BlockOut, CustomerLicences, CustomerOut
from db import directory
from db.models import LicenceBlock

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
    counts = (await directory.licence_counts(session, [customer_id]))[customer_id]
    blocks = (
        await session.execute(
            select(LicenceBlock).where(LicenceBlock.customer_id == customer_id).order_by(LicenceBlock.expires_at)
        )
    ).scalars()
    return CustomerLicences(
        total=sum(counts.values()),
        **counts,
        blocks=[BlockOut.model_validate(b, from_attributes=True) for b in blocks],
    )
