"""A database error in an activity reaches the workflow's history (and the Web UI) without the row it was about:
PostgreSQL's DETAIL line (`Key (customer_id, email)=(..., ann@...) already exists`) stays in the worker's log."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity, workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.faults import described
from db.models import Learner
from licensing.config import Settings
from licensing.temporal import build_worker
from tests import factories
from tests.databases import backend
from tests.factories import Tenant

ADDRESS = "ann.faulty@example.com"


@workflow.defn(sandboxed=False)
class AddTwice:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            "add_the_same_learner_again",
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


async def test_a_unique_violation_in_an_activity_leaves_no_address_in_the_history(
    dev_server: WorkflowEnvironment,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> None:
    learner = await factories.learner(sessions, tenant, email=ADDRESS)

    @activity.defn(name="add_the_same_learner_again")
    async def add_again() -> None:
        async with sessions.begin() as session:
            await session.execute(
                insert(Learner).values(
                    id=uuid.uuid4(),
                    customer_id=learner.customer_id,
                    email=ADDRESS,
                    name="Ann Faulty",
                    source="manual",
                    licence_status="unlicensed",
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )

    interceptors = build_worker(dev_server.client, settings, sessions).config()["interceptors"]
    task_queue = f"faults-{uuid.uuid4()}"  # the service's worker (built above, not run) has the settings' queue
    async with Worker(
        dev_server.client,
        task_queue=task_queue,
        workflows=[AddTwice],
        activities=[add_again],
        interceptors=interceptors,
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await dev_server.client.start_workflow(
            "AddTwice", id=f"add-twice-{uuid.uuid4()}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    history = (await handle.fetch_history()).to_json()
    assert isinstance(failed.value.cause, ActivityError)
    fault = failed.value.cause.cause
    assert isinstance(fault, ApplicationError) and fault.type == "DatabaseFault" and not fault.non_retryable
    message = fault.message
    assert message.startswith("database error ") and "unique constraint" in message.lower()
    assert "ann.faulty" not in history and "Ann Faulty" not in history
    if backend() == "postgresql":
        assert "SQLSTATE 23505" in message and "constraint learners_customer_id_email_key" in message


@pytest.mark.skipif(backend() != "postgresql", reason="SQLite reads any text as any type")
async def test_a_value_the_database_cannot_read_is_named_by_its_kind_alone(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        with pytest.raises(DataError) as refused:
            await session.execute(text("SELECT CAST(:value AS uuid)"), {"value": ADDRESS})
    assert ADDRESS in str(refused.value.orig)  # PostgreSQL quotes the value it could not read
    assert described(refused.value) == "database error InvalidTextRepresentation (SQLSTATE 22P02)"
