"""The Temporal worker: `python worker.py`. It runs the order, licence-term and import workflows and their
activities. At start, and every LICENSING_RECONCILE_EVERY while it runs, it repairs terms, imports and orders
whose workflow could not be started or was ended by hand (licensing/reconcile.py)."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from db.session import create_engine, create_session_factory
from licensing.config import Settings, get_settings
from licensing.leaving import run_then_leave
from licensing.logs import configure as configure_logs
from licensing.reconcile import Reconciled, keep_reconciling, reconcile
from licensing.temporal import (
    build_worker,
    connect,
    metrics_runtime,
    missing_search_attributes,
    namespace_command,
    namespace_missing,
    register_search_attributes,
    search_attributes_command,
)
from rules.durations import add_duration, parse_duration

log = logging.getLogger("licensing.worker")
# Blocks started this recently are checked for a term workflow at every start; `licensing reconcile --all` checks all.
RECENT_BLOCKS = timedelta(days=7)


async def main() -> None:
    settings = get_settings()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    client = await _connected(settings)
    await _search_attributes(client, settings.temporal_namespace)
    worker = build_worker(client, settings, sessions)
    try:
        repaired = await reconcile(client, settings, sessions, blocks_since=datetime.now(UTC) - RECENT_BLOCKS)
    except Exception:  # the database away: the worker starts all the same, and the periodic repair tries again
        log.warning("the repair at start failed; the periodic repair tries again", exc_info=True)
    else:
        _log_repair(repaired)
    log.info(
        "worker polling %s on %s (%s)", settings.task_queue, settings.temporal_address, settings.temporal_namespace
    )
    started = datetime.now(UTC)
    every = add_duration(started, parse_duration(settings.reconcile_every)) - started
    repairing = asyncio.create_task(
        keep_reconciling(client, settings, sessions, every=every, blocks_within=RECENT_BLOCKS)
    )
    try:
        await worker.run()
    finally:
        repairing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await repairing
        await engine.dispose()


def _log_repair(repaired: Reconciled) -> None:
    log.info(
        "checked %d licence terms and %d imports for their workflows; ended %d trial blocks of upgraded customers; "
        "checked %d waiting orders, started %d of their workflows again; "
        "started %d missing terms, %d missing imports and %d ended terms of running blocks again",
        repaired.terms,
        repaired.imports,
        repaired.trials_ended,
        repaired.orders,
        repaired.orders_resumed,
        repaired.terms_started,
        repaired.imports_started,
        repaired.terms_started_again,
    )


async def _connected(settings: Settings) -> Client:
    """A client of Temporal, waiting for it to answer: a worker started beside its server (or before it) waits
    instead of stopping."""
    runtime = metrics_runtime(settings.worker_metrics_address)
    while True:
        try:
            return await connect(settings, runtime=runtime)
        except RuntimeError as problem:  # the SDK's error for a server it cannot reach
            log.warning("Temporal at %s is not reachable (%s); trying again in 2 s", settings.temporal_address, problem)
            await asyncio.sleep(2)


async def _search_attributes(client: Client, namespace: str) -> None:
    """Register the search attributes the namespace lacks (every workflow is filed under them, so none can start
    without them); a namespace whose attributes cannot be listed here (no operator rights) is trusted."""
    try:
        missing = await missing_search_attributes(client, namespace)
    except RPCError as error:
        if namespace_missing(error):
            raise SystemExit(
                f"the Temporal namespace {namespace} does not exist on {client.service_client.config.target_host}: "
                f"create it with: {namespace_command(namespace)} (or set LICENSING_TEMPORAL_NAMESPACE to one that "
                "exists)"
            ) from None
        log.warning("could not check the search attributes of namespace %s (%s); assuming they exist", namespace, error)
        return
    if not missing:
        return
    try:
        await register_search_attributes(client, namespace, missing)
    except RPCError as error:
        raise SystemExit(
            f"the Temporal namespace {namespace} lacks the search attributes {', '.join(missing)} and they could not "
            f"be registered ({error.message}); register them with: {search_attributes_command(namespace)}"
        ) from error
    log.info("registered the search attributes %s on namespace %s", ", ".join(missing), namespace)


def run() -> None:
    configure_logs()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if __name__ == "__main__":
    run_then_leave(run)
