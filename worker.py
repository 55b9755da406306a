"""The Temporal worker: `python worker.py`. It runs the order workflows and their activities."""

import asyncio
import contextlib
import logging

from db.session import create_engine, create_session_factory
from licensing.config import get_settings
from licensing.logs import configure as configure_logs
from licensing.temporal import build_worker, connect, metrics_runtime


async def main() -> None:
    settings = get_settings()
    engine = create_engine(settings.database_url)
    client = await connect(settings, runtime=metrics_runtime(settings.worker_metrics_address))
    worker = build_worker(client, settings, create_session_factory(engine))
    logging.getLogger("licensing.worker").info(
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
