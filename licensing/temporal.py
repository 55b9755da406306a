"""The Temporal client, the worker's contents, and how the API starts and talks to order workflows."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.blocks import BlockActivities
from activities.email import EmailActivities
from activities.faults import DatabaseErrorsWithoutData
from activities.imports import ImportActivities
from activities.orders import OrderActivities
from licensing.config import Settings
from mail import smtp
from mail.postman import Postman
from workflows import search
from workflows.block import LicenceBlockWorkflow
from workflows.learner_import import LearnerImportWorkflow
from workflows.order import LicenceOrderWorkflow

WORKFLOWS: Sequence[type] = (LicenceOrderWorkflow, LicenceBlockWorkflow, LearnerImportWorkflow)


def metrics_runtime(bind_address: str) -> Runtime | None:
    """A runtime whose SDK metrics (worker task slots, latencies, failures) Prometheus scrapes at
    http://ADDRESS/metrics; None keeps the default runtime without an endpoint."""
    if not bind_address:
        return None
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))
    except ValueError as problem:  # the SDK's "Failed starting Prometheus exporter: Address already in use"
        raise SystemExit(
            f"the worker's metrics endpoint cannot listen on {bind_address} ({problem}); another worker on this "
            "machine may hold it: give each worker its own LICENSING_WORKER_METRICS_ADDRESS (host:port), or an "
            "empty one to turn the endpoint off"
        ) from problem


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
    )


async def register_search_attributes(client: Client, namespace: str, names: Sequence[str] | None = None) -> None:
    """Register PartnerId, CustomerId and OrderStatus (or those of them named) as keyword search attributes."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search.ALL_KEYS
                if names is None or key.name in names
            },
        )
    )


async def missing_search_attributes(client: Client, namespace: str) -> list[str]:
    """Those of our search attributes the namespace does not have."""
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    return [key.name for key in search.ALL_KEYS if key.name not in listed.custom_attributes]


def search_attributes_command(namespace: str) -> str:
    """What an operator runs to register them by hand."""
    return " && ".join(
        f"temporal operator search-attribute create --namespace {namespace} --name {key.name} --type Keyword"
        for key in search.ALL_KEYS
    )


def namespace_command(namespace: str) -> str:
    """What an operator runs to create a namespace that does not exist."""
    return f"temporal operator namespace create --namespace {namespace}"


def namespace_missing(error: RPCError) -> bool:
    """The server's answer to a call on a namespace it does not have (LICENSING_TEMPORAL_NAMESPACE misspelt, or
    not created yet on a new cluster)."""
    return error.status is RPCStatusCode.NOT_FOUND and "namespace" in error.message.lower()


def postman(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Postman:
    relay = smtp.Relay(settings.smtp_host, settings.smtp_port, settings.smtp_timeout_seconds)
    return Postman(sessions, relay, mail_from=settings.mail_from, clock=lambda: datetime.now(UTC))


def activities(settings: Settings, sessions: async_sessionmaker[AsyncSession], client: Client) -> list[Any]:
    mail = postman(settings, sessions)
    orders = OrderActivities(sessions, mail, client=client, task_queue=settings.task_queue)
    blocks = BlockActivities(sessions, mail, client=client, task_queue=settings.task_queue)
    email = EmailActivities(mail)
    return [
        orders.persist_order,
        orders.assign_order,
        orders.close_order,
        orders.recover_order_decision,
        orders.notify_order_event,
        blocks.start_licence_term,
        blocks.expire_block,
        blocks.notify_block_event,
        email.deliver_email,
        ImportActivities(sessions).import_learner_batch,
    ]


def build_worker(client: Client, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=activities(settings, sessions, client),
        interceptors=[DatabaseErrorsWithoutData()],  # no learner's data in a failure the Web UI shows
        # Let a stopping worker finish the transactions and sends in flight instead of cutting them off.
        graceful_shutdown_timeout=timedelta(seconds=20),
    )
