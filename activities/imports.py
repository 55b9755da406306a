"""Activities of the learner import workflow: one batch of rows per call, heartbeating while it works, so a
killed worker's batch is retried on another worker within the heartbeat timeout."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.errors import business_errors_are_final
from db import imports
from payloads.imports import ImportBatch, ImportProgress

HEARTBEAT_EVERY_SECONDS = 5.0


@contextlib.asynccontextmanager
async def heartbeating(details: object) -> AsyncIterator[None]:
    async def beat() -> None:
        while True:
            activity.heartbeat(details)
            await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class ImportActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name="import_learner_batch")
    @business_errors_are_final
    async def import_learner_batch(self, batch: ImportBatch) -> ImportProgress:
        async with heartbeating(str(batch.import_id)):
            return await imports.process_batch(self._sessions, batch)
