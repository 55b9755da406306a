"""The partners' guide, steps 1-3, renewal of expired learners, reallocation after deletion and a trial upgrade,
walked through the API against the dev server, the database and SMTP, with a licence term of seconds."""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from licensing.config import Settings
from tests import factories
from tests.factories import Person, Tenant
from tests.smtp_server import SmtpServer

TERM_SECONDS = 6


@pytest.fixture
def settings(database_url: str, smtp: SmtpServer) -> Settings:
    """A demo's settings: the whole term runs in seconds."""
    return Settings(
        database_url=database_url,
        task_queue=f"test-{uuid.uuid4()}",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        mail_from="Partner Licensing <licensing@example.com>",
        licence_term=f"PT{TERM_SECONDS}S",
        renewal_reminders="PT3S",
        trial_term="PT1H",
    )


async def until(check: Callable[[], Awaitable[Any]], within_seconds: float = 30) -> Any:
    """Poll what a user would look at until it shows what the workflow does on its own."""
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not (seen := await check()):
        assert asyncio.get_running_loop().time() < deadline, "the workflow did not get there in time"
        await asyncio.sleep(0.2)
    return seen


class Walk:
    def __init__(self, api: httpx.AsyncClient, tenant: Tenant) -> None:
        self.api, self.tenant = api, tenant
        self.pm, self.cm = tenant.partner_manager, tenant.customer_manager

    async def call(self, method: str, url: str, by: Person, json: Any = None, expect: int = 200) -> Any:
        response = await self.api.request(method, url, json=json, headers=by.headers)
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    async def order_and_assign(self, customer_id: uuid.UUID, quantity: int) -> Any:
        """Steps 1 and 2: request in manage mode; assign from Requested Orders."""
        await self.call("POST", f"/customers/{customer_id}/licence-orders", self.pm, {"quantity": quantity}, 201)
        requested = await self.call(
            "GET", f"/partners/{self.tenant.partner_id}/licence-orders?status=requested", self.pm
        )
        [order] = [o for o in requested["items"] if o["customer_id"] == str(customer_id)]
        return await self.call("POST", f"/licence-orders/{order['id']}/assign", self.pm)

    async def add_learner(self, customer_id: uuid.UUID, by: Person) -> Any:
        body = {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Lee Learner"}
        return await self.call("POST", f"/customers/{customer_id}/learners", by, body, 201)

    async def learners(self, customer_id: uuid.UUID, status: str, by: Person) -> list[str]:
        page = await self.call("GET", f"/customers/{customer_id}/learners?licence_status={status}", by)
        return sorted(learner["id"] for learner in page["items"])


async def test_the_whole_guide(api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer) -> None:
    walk, c = Walk(api, tenant), tenant.customer_id
    # Steps 1-2, then Step 3 Scenario A: new learners take licences automatically.
    first = await walk.order_and_assign(c, 2)
    a, b = await walk.add_learner(c, walk.pm), await walk.add_learner(c, walk.cm)
    assert {a["licence_status"], b["licence_status"]} == {"active"}
    # The term runs out on its own: a reminder, then expiry, then the summary.
    expired = await until(lambda: _all_expired(walk, c, [a["id"], b["id"]]))

    async def summary_sent() -> bool:
        return any("have expired" in str(m["Subject"]) for m in smtp.inbox.to(walk.cm.email))

    await until(summary_sent)
    assert any("expire on" in str(m["Subject"]) for m in smtp.inbox.to(walk.cm.email))
    # Scenario B: a new order does not renew anybody; a new learner still takes a licence at once.
    second = await walk.order_and_assign(c, 3)
    assert await walk.learners(c, "expired", walk.cm) == expired
    newcomer = await walk.add_learner(c, walk.cm)
    allocated = await walk.call("POST", f"/customers/{c}/licence-allocations", walk.pm, {"all": "expired"})
    assert (newcomer["licence_status"], allocated["allocated"]) == ("active", 2)
    assert second["block"]["expires_at"] != first["block"]["expires_at"]
    # Reallocation: deleting a learner frees its licence, with its remaining term, for the next learner.
    await walk.call("DELETE", f"/customers/{c}/learners/{a['id']}", walk.cm, expect=204)
    successor = await walk.add_learner(c, walk.cm)
    assert (successor["licence_status"], successor["licence_expires_at"]) == ("active", second["block"]["expires_at"])
    # A trial customer upgraded: its trial licences expire at once; premium licences are allocated by hand.
    trial = await walk.call(
        "POST",
        f"/partners/{tenant.partner_id}/customers",
        walk.pm,
        {"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial", "trial_licences": 2},
        201,
    )
    t = uuid.UUID(trial["id"])
    trialist = await walk.add_learner(t, walk.pm)
    upgraded = await walk.call("POST", f"/customers/{t}/upgrade", walk.pm)
    assert (trialist["licence_status"], upgraded["account_type"]) == ("active", "premium")
    assert await walk.learners(t, "expired", walk.pm) == [trialist["id"]]
    # The trial block says when it ended beside when its term was to end, and so do its learners.
    [ended] = (await walk.call("GET", f"/customers/{t}/licences", walk.pm))["blocks"]
    expired = await walk.call("GET", f"/customers/{t}/learners?licence_status=expired", walk.pm)
    assert (ended["status"], ended["expired_at"] < ended["expires_at"]) == ("expired", True)
    assert [learner["licence_expires_at"] for learner in expired["items"]] == [ended["expired_at"]]
    await walk.order_and_assign(t, 1)
    assert await walk.learners(t, "expired", walk.pm) == [trialist["id"]]
    await walk.call("POST", f"/customers/{t}/licence-allocations", walk.pm, {"learner_ids": [trialist["id"]]})
    assert await walk.learners(t, "active", walk.pm) == [trialist["id"]]


async def _all_expired(walk: Walk, customer_id: uuid.UUID, ids: list[str]) -> list[str] | None:
    expired = await walk.learners(customer_id, "expired", walk.cm)
    return expired if expired == sorted(ids) else None


async def test_a_trial_customer_starts_with_its_trial_licences(api: httpx.AsyncClient, tenant: Tenant) -> None:
    trial = await Walk(api, tenant).call(
        "POST",
        f"/partners/{tenant.partner_id}/customers",
        tenant.partner_manager,
        {"name": f"Trial {uuid.uuid4().hex[:6]}", "account_type": "trial", "trial_licences": 3},
        201,
    )
    licences = await Walk(api, tenant).call("GET", f"/customers/{trial['id']}/licences", tenant.partner_manager)
    assert (licences["total"], licences["available"], licences["blocks"][0]["kind"]) == (3, 3, "trial")


async def test_only_the_partner_upgrades_a_customer(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = await factories.tenant(sessions)
    response = await api.post(f"/customers/{tenant.customer_id}/upgrade", headers=tenant.customer_manager.headers)
    assert response.status_code == 403


async def test_allocation_racing_deletion_never_breaks_the_counts(
    api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    walk, c = Walk(api, tenant), tenant.customer_id
    await factories.block(sessions, tenant, quantity=3, days=300)
    holders = [await walk.add_learner(c, walk.cm) for _ in range(3)]
    waiting = [await walk.add_learner(c, walk.cm) for _ in range(3)]
    answers = await asyncio.gather(
        *(api.delete(f"/customers/{c}/learners/{h['id']}", headers=walk.cm.headers) for h in holders),
        *(
            api.post(f"/customers/{c}/licence-allocations", json={"learner_ids": [w["id"]]}, headers=walk.cm.headers)
            for w in waiting
        ),
    )
    licences = await walk.call("GET", f"/customers/{c}/licences", walk.cm)
    active = await walk.learners(c, "active", walk.cm)
    allocated_ok = sum(1 for r in answers[3:] if r.status_code == 200)
    assert [r.status_code for r in answers[:3]] == [204, 204, 204]
    assert (licences["allocated"], licences["available"], len(active)) == (allocated_ok, 3 - allocated_ok, allocated_ok)
