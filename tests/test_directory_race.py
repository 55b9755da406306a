"""A learner added by hand (or by CSV) while the directory provisions the same person (its userName is the address
added) is refused, as `known_as` promises, also when both arrive at the same moment: the manual add checks under the
customer's row lock, as SCIM does (on PostgreSQL, READ COMMITTED with real row locks)."""

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import scim
from db.models import Learner
from payloads.common import SYSTEM
from tests.databases import backend
from tests.factories import Tenant

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="row locks and READ COMMITTED: PostgreSQL")


async def _known_as(sessions: async_sessionmaker[AsyncSession], tenant: Tenant, address: str) -> int:
    async with sessions() as session:
        found = await session.execute(
            select(func.count())
            .select_from(Learner)
            .where(
                Learner.customer_id == tenant.customer_id,
                or_(Learner.email == address, func.lower(Learner.user_name) == address),
            )
        )
        return int(found.scalar_one())


async def test_a_learner_added_by_hand_while_the_directory_provisions_that_upn_is_refused(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    upn = f"upn-{uuid.uuid4().hex[:8]}@corp.example"
    async with sessions.begin() as directory_side:  # the SCIM request, not committed yet
        await scim.provision(
            directory_side,
            customer_id=tenant.customer_id,
            user=scim.DirectoryUser(user_name=upn, email=f"mail-{uuid.uuid4().hex[:8]}@corp.example"),
            actor=SYSTEM,
            now=datetime.now(UTC),
        )
        by_hand = asyncio.create_task(
            api.post(
                f"/customers/{tenant.customer_id}/learners",
                json={"email": upn, "name": "Uma"},
                headers=tenant.customer_manager.headers,
            )
        )
        await asyncio.sleep(1.5)  # the manual add is under way while the directory's learner is being written
    answer = await asyncio.wait_for(by_hand, 30)
    assert (answer.status_code, await _known_as(sessions, tenant, upn)) == (409, 1), answer.text
