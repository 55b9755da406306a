"""Two upgrades of one trial customer at once (a double click, a retry after a slow answer): each answers only once
the trial's licences have expired, so that whoever reads after either answer finds its learners expired."""

import asyncio
import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests import factories


async def test_each_of_two_upgrades_at_once_answers_after_the_trial_expired(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    pm = tenant.partner_manager.headers
    made = await api.post(
        f"/partners/{tenant.partner_id}/customers",
        json={"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial", "trial_licences": 2},
        headers=pm,
    )
    trial = made.json()["id"]
    added = await api.post(f"/customers/{trial}/learners", json={"email": "tia@example.com", "name": "Tia"}, headers=pm)
    assert added.json()["licence_status"] == "active", added.text

    async def upgrade_then_read() -> tuple[int, str]:
        upgraded = await api.post(f"/customers/{trial}/upgrade", headers=pm)
        learner = (await api.get(f"/customers/{trial}/learners/{added.json()['id']}", headers=pm)).json()
        return upgraded.status_code, learner["licence_status"]

    seen = await asyncio.gather(*(upgrade_then_read() for _ in range(4)))
    assert seen == [(200, "expired")] * 4
