"""The operator CLI, run as an operator runs it: a process with the service's settings."""

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from db.models import Customer
from licensing import operator
from licensing.config import Settings
from rules.errors import NotFound
from tests import factories
from tests.factories import Tenant
from tests.smtp_server import SmtpServer
from tests.test_api_orders import request_licences
from workflows.block import block_workflow_id

LICENSING = str(Path(sys.executable).parent / "licensing")


@pytest.fixture
def cli_env(settings: Settings, dev_server: WorkflowEnvironment) -> dict[str, str]:
    return {
        **os.environ,
        "LICENSING_DATABASE_URL": settings.database_url,
        "LICENSING_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "LICENSING_TASK_QUEUE": settings.task_queue,
        "LICENSING_SMTP_PORT": str(settings.smtp_port),
        "COLUMNS": "200",
    }


async def licensing(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        LICENSING, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def operator_email(cli_env: dict[str, str]) -> str:
    email = f"ops-{os.urandom(3).hex()}@example.com"
    code, _, err = await licensing(cli_env, "create-operator", "--email", email)
    assert code == 0, err
    return email


async def test_create_a_partner_and_credit_its_stock(cli_env: dict[str, str], operator_email: str) -> None:
    name = f"CLI Partner {os.urandom(3).hex()}"
    _, partner_id, _ = await licensing(cli_env, "create-partner", name, "--by", operator_email)
    _, credited, _ = await licensing(
        cli_env, "credit-stock", partner_id.strip(), "40", "--reference", "PO-9", "--by", operator_email
    )
    again = await licensing(
        cli_env, "credit-stock", partner_id.strip(), "40", "--reference", "PO-9", "--by", operator_email
    )
    _, listed, _ = await licensing(cli_env, "partners")
    assert (credited.strip(), again[0], "already credited" in again[2]) == ("licence stock is now 40", 1, True)
    assert name in listed and partner_id.strip() in listed


async def test_requested_orders_and_a_customers_licences(
    cli_env: dict[str, str], api: httpx.AsyncClient, tenant: Tenant
) -> None:
    waiting = await request_licences(api, tenant, 3)
    assigned = await request_licences(api, tenant, 2)
    await api.post(f"/licence-orders/{assigned['id']}/assign", headers=tenant.partner_manager.headers)
    _, orders, _ = await licensing(cli_env, "requested-orders", str(tenant.partner_id))
    _, licences, _ = await licensing(cli_env, "licences", str(tenant.customer_id))
    assert (waiting["id"] in orders, assigned["id"] in orders, waiting["customer_name"] in orders) == (
        True,
        False,
        True,
    )
    assert "total 2: available 2, allocated 0, expired 0" in licences


async def test_import_a_csv_with_a_progress_bar(
    cli_env: dict[str, str], api: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    staff = tmp_path / "staff.csv"
    staff.write_bytes(b"email;name\r\nann@example.com;Ann\r\nbob@example.com;Bob\r\nnope;Nope\r\n")
    code, out, err = await licensing(
        cli_env, "import-csv", str(tenant.customer_id), str(staff), "--by", tenant.customer_manager.email
    )
    learners = await api.get(f"/customers/{tenant.customer_id}/learners", headers=tenant.customer_manager.headers)
    assert (code, "2 learners created" in out, "1 row refused" in out) == (0, True, True), err
    assert len(learners.json()["items"]) == 2


async def test_only_a_manager_of_the_customer_or_of_its_partner_imports_for_it(
    cli_env: dict[str, str],
    api: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    other = await factories.tenant(sessions)
    staff = tmp_path / "staff.csv"
    staff.write_bytes(b"email,name\r\ncara@example.com,Cara\r\n")
    customer = str(tenant.customer_id)
    refused = [
        await licensing(cli_env, "import-csv", customer, str(staff), "--by", email)
        for email in (other.customer_manager.email, other.partner_manager.email)
    ]
    by_partner = await licensing(cli_env, "import-csv", customer, str(staff), "--by", tenant.partner_manager.email)
    not_an_operator = await licensing(cli_env, "create-partner", "Ghost", "--by", tenant.partner_manager.email)
    assert [(code, "does not manage" in err) for code, _, err in refused] == [(1, True), (1, True)]
    assert (by_partner[0], "1 learner created" in by_partner[1]) == (0, True), by_partner[2]
    assert await factories.manage_mode_of_import(sessions, tenant) == (
        tenant.partner_manager.id,
        True,
        tenant.customer_id,
    )
    assert (not_an_operator[0], "is a partner manager, not an operator" in not_an_operator[2]) == (1, True)


async def test_an_operator_who_lost_their_token_gets_a_new_one_and_a_removed_one_is_not_used_as_actor(
    cli_env: dict[str, str], api: httpx.AsyncClient, operator_email: str, tenant: Tenant
) -> None:
    code, printed, _ = await licensing(cli_env, "issue-token", "--email", operator_email.upper())
    me = await api.get("/users/me", headers={"Authorization": f"Bearer {printed.strip()}"})
    removed = await api.delete(f"/users/{me.json()['id']}", headers=tenant.partner_manager.headers)
    unknown = await licensing(cli_env, "issue-token", "--email", "nobody@example.com")
    colleague = await licensing(cli_env, "create-operator", "--email", f"second-{operator_email}")
    second = {"Authorization": f"Bearer {colleague[1].strip()}"}
    by_operator = await api.delete(f"/users/{me.json()['id']}", headers=second)
    as_actor = await licensing(cli_env, "create-partner", "Ghost", "--by", operator_email)
    assert (code, me.status_code, me.json()["email"], removed.status_code, by_operator.status_code) == (
        0,
        200,
        operator_email,
        404,  # a partner's manager does not see operators
        204,
    )
    assert (unknown[0], unknown[2].strip()) == (1, "error: no user with email nobody@example.com")
    assert (as_actor[0], as_actor[2].strip()) == (
        1,
        f"error: the access of {operator_email} was removed; use the email of a current operator",
    )


async def test_an_unknown_partner_is_a_clear_error(cli_env: dict[str, str]) -> None:
    code, _, err = await licensing(cli_env, "requested-orders", "00000000-0000-0000-0000-000000000000")
    assert (code, err.strip()) == (1, "error: partner 00000000-0000-0000-0000-000000000000 not found")


async def _failed_email(cli_env: dict[str, str], api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer) -> str:
    """The id of the 'requested' email to the partner's manager, refused for good by the relay (550)."""
    smtp.inbox.refusals.append("550 5.1.1 mailbox unknown")
    await request_licences(api, tenant, 1)
    for _ in range(100):
        _, failed, _ = await licensing(cli_env, "failed-emails")
        if tenant.partner_manager.email in failed:
            break
        await asyncio.sleep(0.1)
    return next(line.split()[1] for line in failed.splitlines() if tenant.partner_manager.email in line)


async def test_a_failed_email_is_listed_and_sent_again(
    cli_env: dict[str, str], api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer
) -> None:
    email_id = await _failed_email(cli_env, api, tenant, smtp)
    code, out, err = await licensing(cli_env, "resend-email", email_id)
    assert (code, out.strip(), len(smtp.inbox.to(tenant.partner_manager.email))) == (0, "sent", 1), err


async def test_a_failed_email_resent_by_two_operators_at_once_goes_out_once(
    cli_env: dict[str, str], api: httpx.AsyncClient, tenant: Tenant, smtp: SmtpServer, settings: Settings
) -> None:
    email_id = await _failed_email(cli_env, api, tenant, smtp)
    outcomes = await asyncio.gather(
        *(operator.resend_email(settings, uuid.UUID(email_id)) for _ in range(2)), return_exceptions=True
    )
    refused = [o for o in outcomes if isinstance(o, NotFound)]
    assert (len(refused), outcomes.count(None), len(smtp.inbox.to(tenant.partner_manager.email))) == (1, 1, 1)
    assert "has not failed (it is" in refused[0].message


@pytest.mark.parametrize(
    ("args", "told"),
    [
        (("create-partner", "P" * 201), "the partner's name must be at most 200 characters (it has 201)"),
        (("create-partner", "   "), "the partner's name must not be empty"),
        (("create-partner", "Two\nlines"), "the partner's name must be one line"),
        (("credit-stock", "{partner}", "5", "--reference", "PO\n9"), "the purchase reference must be one line"),
        (("credit-stock", "{partner}", "5", "--reference", "R" * 201), "the purchase reference must be at most 200"),
    ],
)
async def test_the_cli_refuses_the_names_and_references_the_api_refuses(
    cli_env: dict[str, str], operator_email: str, tenant: Tenant, args: tuple[str, ...], told: str
) -> None:
    filled = [arg.format(partner=tenant.partner_id) for arg in args]
    code, _, err = await licensing(cli_env, *filled, "--by", operator_email)
    assert (code, err.startswith(f"error: {told}")) == (1, True), err[-400:]


async def test_a_name_with_square_brackets_is_shown_as_it_is(
    cli_env: dict[str, str], api: httpx.AsyncClient, tenant: Tenant, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The API takes `Acme [/EU]` for a name; the CLI's tables print it, not read it as markup."""
    async with sessions.begin() as session:
        await session.execute(update(Customer).where(Customer.id == tenant.customer_id).values(name="Acme [/EU]"))
    order = await request_licences(api, tenant, 1)
    code, orders, err = await licensing(cli_env, "requested-orders", str(tenant.partner_id))
    assert (code, order["id"] in orders, "Acme [/EU]" in orders) == (0, True, True), err


async def test_reconcile_says_how_many_missing_terms_it_started(
    cli_env: dict[str, str], dev_server: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A block saved while Temporal was away has no term: `licensing reconcile` starts one and says so."""
    tenant = await factories.tenant(sessions)
    await factories.block(sessions, tenant, quantity=1, days=30)
    block_id = await factories.block_id(sessions, tenant)
    code, out, err = await licensing(cli_env, "reconcile")
    started = re.search(r"started (\d+) missing licence terms", out)
    assert (code, started is not None) == (0, True), (out, err)
    assert started is not None and int(started.group(1)) >= 1  # the database may hold other tests' blocks
    term = await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).describe()
    assert term.status == WorkflowExecutionStatus.RUNNING
    await dev_server.client.get_workflow_handle(block_workflow_id(block_id)).terminate("test over")
