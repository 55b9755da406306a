"""The Temporal worker: `python worker.py`. It runs the order, licence-term and import workflows and their
activities. At start it repairs terms and imports whose workflow could not be started (licensing/reconcile.py)."""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from db.session import create_engine, create_session_factory
from licensing.config import get_settings
from licensing.logs import configure as configure_logs
from licensing.reconcile import reconcile
from licensing.temporal import build_worker, connect, metrics_runtime

log = logging.getLogger("licensing.worker")
# Blocks started this recently are checked for a term workflow at every start; `licensing reconcile --all` checks all.
RECENT_BLOCKS = timedelta(days=7)


async def main() -> None:
    settings = get_settings()
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    client = await connect(settings, runtime=metrics_runtime(settings.worker_metrics_address))
    worker = build_worker(client, settings, sessions)
    repaired = await reconcile(client, settings, sessions, blocks_since=datetime.now(UTC) - RECENT_BLOCKS)
    log.info(
        "checked %d licence terms and %d imports for their workflows; ended %d trial blocks of upgraded customers; "
        "checked %d waiting orders, started %d of their workflows again; "
        "started %d ended terms of running blocks again",
        repaired.terms,
        repaired.imports,
        repaired.trials_ended,
        repaired.orders,
        repaired.orders_resumed,
        repaired.terms_started_again,
    )
    log.info(
        "worker polling %s on %s (%s)", settings.task_queue, settings.temporal_address, settings.temporal_namespace
    )
    try:
        await worker.run()
    finally:
        await engine.dispose()


if __name__ == "__main__":
    configure_logs()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
