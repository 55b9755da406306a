"""A term that is over while its expiry is not written yet (no worker ran at that moment): its free licences
count as expired, as allocation treats them; a held one stays allocated, with its learner active, until the
expiry is written, so that the counts, the learner lists and allocation agree; the CLI
shows the block as the API does."""

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from tests import factories
from tests.factories import Tenant
from tests.test_cli import cli_env, licensing  # noqa: F401  (the fixture)


async def test_a_licence_counted_expired_has_its_learner_in_the_expired_licences_tab(
    api: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    """The counts say one licence expired and none is allocated; the learner who held it must then be an expired
    learner (the Expired Licences tab, `{"all": "expired"}`), not an active one that allocation refuses."""
    await factories.short_block_with_a_learner(sessions, tenant, seconds=2)
    await asyncio.sleep(2.5)  # the term is over; no workflow expired it (none runs for this block)
    headers = tenant.customer_manager.headers
    counts = (await api.get(f"/customers/{tenant.customer_id}/licences", headers=headers)).json()
    expired_tab = (
        await api.get(f"/customers/{tenant.customer_id}/learners?licence_status=expired", headers=headers)
    ).json()["items"]
    active_tab = (
        await api.get(f"/customers/{tenant.customer_id}/learners?licence_status=active", headers=headers)
    ).json()["items"]
    # Either way round, but the same way: the learner holding it is active, so its licence is allocated.
    assert (counts["allocated"], counts["expired"]) == (len(active_tab), 2 - len(active_tab)), (counts, expired_tab)


async def test_the_cli_shows_a_block_whose_term_is_over_as_the_api_does(
    cli_env: dict[str, str],  # noqa: F811
    dev_server: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    api: httpx.AsyncClient,
    tenant: Tenant,
) -> None:
    await factories.short_block_with_a_learner(sessions, tenant, seconds=1)
    await asyncio.sleep(1.5)
    seen = (await api.get(f"/customers/{tenant.customer_id}/licences", headers=tenant.customer_manager.headers)).json()
    code, out, _ = await licensing(cli_env, "licences", str(tenant.customer_id))
    [block] = seen["blocks"]
    [row] = [line for line in out.splitlines() if block["id"] in line]
    assert (code, block["status"], "total 2: available 0, allocated 1, expired 1" in out) == (0, "expired", True), out
    assert row.split("│")[-2].strip() == "expired", out
