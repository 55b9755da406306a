"""An upgrade commits, then ends the customer's trial blocks through their workflows. Until that write lands (a
refusal from Temporal other than "unreachable", the API stopped in between: the worker's repair ends it later),
allocation already refuses the trial's licences of a premium customer. The counts and the renewals due must read
them the same way: no licence "available" that a new learner cannot get, and no trial of a premium customer shown
as its next renewal."""

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import blocks
from db.models import Customer
from rules.licences import BlockKind
from tests.factories import Tenant
from tests.test_api_learners import add


async def _upgraded_with_its_trial_running(sessions: async_sessionmaker[AsyncSession], tenant: Tenant) -> None:
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.TRIAL,
            quantity=2,
            starts_at=now,
            expires_at=now + timedelta(days=10),
        )
        # The upgrade's commit (the factory's customer is premium already; its trial block is what is left).
        await session.execute(update(Customer).where(Customer.id == tenant.customer_id).values(account_type="premium"))


async def test_the_trial_licences_of_an_upgraded_customer_are_not_counted_available(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await _upgraded_with_its_trial_running(sessions, tenant)
    headers = tenant.customer_manager.headers
    seen = (await api.get(f"/customers/{tenant.customer_id}/licences", headers=headers)).json()
    learner = await add(api, tenant)  # allocation gives it no trial licence
    view = (await api.get(f"/partners/{tenant.partner_id}/customers", headers=tenant.partner_manager.headers)).json()
    [item] = view["items"]

    assert learner["licence_status"] == "unlicensed"
    assert (seen["total"], seen["available"], seen["expired"]) == (2, 0, 2), seen
    assert (item["licences"]["available"], item["licences"]["expired"]) == (0, 2), item


async def test_the_trial_of_an_upgraded_customer_is_no_renewal_due(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    await _upgraded_with_its_trial_running(sessions, tenant)
    path = f"/partners/{tenant.partner_id}/customers"
    headers = tenant.partner_manager.headers
    [item] = (await api.get(path, headers=headers)).json()["items"]
    due = (await api.get(path, params={"expiring_within": "P30D"}, headers=headers)).json()["items"]
    assert (item["next_expiry"], due) == (None, [])
