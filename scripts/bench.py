"""`make bench`: speed and memory as ratios against baselines measured in the same run on the same machine.

Prints a table, then one JSON line of figures. Starts its own Temporal dev server, SQLite database (or the
PostgreSQL named by LICENSING_BENCH_DATABASE_URL) and SMTP relay (aiosmtpd in its own process). Figures and goals:
- expiry_10k_vs_raw_update: expiring a 10,000-licence block / a raw SQL UPDATE of the same rows (goal <= 2)
- import_10k_vs_raw_insert: importing 10,000 CSV rows / a raw bulk INSERT of 10,000 learners (goal <= 5)
- allocation_race_double_allocations: licences held twice after 200 concurrent adds for 50 licences (must be 0)
- order_throughput_ratio: full order lifecycles per second / a minimal order-shaped workflow (3 no-op activities
  and one update) per second on the same server (goal >= 0.7); with the CPU each used per order, in this process
  (the API and the worker), in the Temporal server and in the SMTP relay, to show where the time goes
- read_p50_ratio, read_p99_ratio: GET a customer's licences / GET /healthz, 50 concurrent clients
- worker_rss_mb_10k_terms / worker_rss_mb_idle: a worker's peak RSS with 10,000 sleeping licence terms / none
"""

import asyncio
import contextlib
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from db import blocks, imports, learners
from db.migrate import upgrade_to_head
from db.models import Learner, Licence, LicenceBlock
from db.session import create_engine, create_session_factory
from licensing.config import Settings
from payloads.blocks import ExpireBlock
from payloads.common import SYSTEM, Actor, Role
from payloads.imports import ImportBatch
from rules.learner_csv import CsvRow
from rules.licences import BlockKind, LearnerSource
from scripts.bench_workers import order_throughput, rss_mb, worker_memory
from tests import factories
from tests.smtp_server import free_port
from workflows.search import ALL_KEYS

Sessions = async_sessionmaker[AsyncSession]
ROWS = 10_000


async def _settle(sessions: Sessions) -> None:
    """Before a timing: collect the garbage the set-up left, and on SQLite write the WAL back into the database,
    so that neither side of a comparison pays for a collection or a checkpoint the other one caused."""
    gc.collect()
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


async def _paired_medians(
    ours: Callable[[], Awaitable[float]], baseline: Callable[[], Awaitable[float]], runs: int = 5
) -> tuple[float, float]:
    """Medians of `runs` timings each, ours and the baseline taking turns (each first every other time), so that
    both see the same machine."""
    mine: list[float] = []
    theirs: list[float] = []
    for run in range(runs):
        if run % 2:
            theirs.append(await baseline())
            mine.append(await ours())
        else:
            mine.append(await ours())
            theirs.append(await baseline())
    return statistics.median(mine), statistics.median(theirs)


async def _block(sessions: Sessions, tenant: factories.Tenant, quantity: int) -> LicenceBlock:
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        return await blocks.create_block(
            session,
            customer_id=tenant.customer_id,
            kind=BlockKind.PREMIUM,
            quantity=quantity,
            starts_at=now,
            expires_at=now + timedelta(days=365),
        )


async def expiry_ratio(sessions: Sessions) -> dict[str, float]:
    async def ours() -> float:
        block = await _block(sessions, await factories.tenant(sessions), ROWS)
        await _settle(sessions)
        started = time.perf_counter()
        await blocks.expire_block(
            sessions, ExpireBlock(block_id=block.id, at=datetime.now(UTC), actor=SYSTEM, reason="bench")
        )
        return time.perf_counter() - started

    async def raw() -> float:
        block = await _block(sessions, await factories.tenant(sessions), ROWS)
        await _settle(sessions)
        started = time.perf_counter()
        async with sessions.begin() as session:
            await session.execute(update(Licence).where(Licence.block_id == block.id).values(status="expired"))
        return time.perf_counter() - started

    mine, baseline = await _paired_medians(ours, raw)
    return {"expiry_10k_seconds": mine, "raw_update_10k_seconds": baseline, "expiry_10k_vs_raw_update": mine / baseline}


async def import_ratio(sessions: Sessions) -> dict[str, float]:
    async def ours() -> float:
        tenant = await factories.tenant(sessions)
        actor = Actor(user_id=tenant.customer_manager.id, role=Role.CUSTOMER_MANAGER)
        rows = (CsvRow(n + 2, f"s{n}@bench.example", f"Staff {n}") for n in range(ROWS))
        await _settle(sessions)
        started = time.perf_counter()
        async with sessions.begin() as session:
            upload = await imports.store_upload(
                session, customer_id=tenant.customer_id, filename="b.csv", rows=rows, actor=actor, now=datetime.now(UTC)
            )
        while not (
            await imports.process_batch(
                sessions, ImportBatch(import_id=upload.id, actor=actor, at=datetime.now(UTC), batch_size=500)
            )
        ).done:
            pass
        return time.perf_counter() - started

    async def raw() -> float:
        tenant = await factories.tenant(sessions)
        now = datetime.now(UTC)
        values = [
            {
                "id": uuid.uuid4(),
                "customer_id": tenant.customer_id,
                "email": f"r{n}@bench.example",
                "name": f"Staff {n}",
                "source": "csv",
                "licence_status": "unlicensed",
                "created_at": now,
                "active": True,
            }
            for n in range(ROWS)
        ]
        await _settle(sessions)
        started = time.perf_counter()
        async with sessions.begin() as session:
            await session.execute(insert(Learner), values)
        return time.perf_counter() - started

    mine, baseline = await _paired_medians(ours, raw)
    return {"import_10k_seconds": mine, "raw_insert_10k_seconds": baseline, "import_10k_vs_raw_insert": mine / baseline}


async def allocation_race(sessions: Sessions) -> dict[str, float]:
    tenant = await factories.tenant(sessions)
    await _block(sessions, tenant, 50)

    async def add(n: int) -> None:
        async with sessions.begin() as session:
            await learners.add_learner(
                session,
                customer_id=tenant.customer_id,
                email=f"race{n}@bench.example",
                name="Racer",
                source=LearnerSource.MANUAL,
                actor=SYSTEM,
                now=datetime.now(UTC),
            )

    await asyncio.gather(*(add(n) for n in range(200)))
    async with sessions() as session:
        held = (
            await session.execute(
                select(func.count())
                .select_from(Licence)
                .where(Licence.customer_id == tenant.customer_id, Licence.learner_id.is_not(None))
            )
        ).scalar_one()
        distinct = (
            await session.execute(
                select(func.count(func.distinct(Licence.learner_id))).where(Licence.customer_id == tenant.customer_id)
            )
        ).scalar_one()
        active = (
            await session.execute(
                select(func.count())
                .select_from(Learner)
                .where(Learner.customer_id == tenant.customer_id, Learner.licence_status == "active")
            )
        ).scalar_one()
    return {
        "allocation_race_double_allocations": float((held - distinct) + abs(active - held)),
        "allocation_race_active": float(active),
    }


async def read_latency(settings: Settings, sessions: Sessions, client: Client) -> dict[str, float]:
    tenant = await factories.tenant(sessions)
    app = create_app(settings, sessions=sessions, temporal=client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as api:

        async def measure(path: str, headers: dict[str, str]) -> list[float]:
            times: list[float] = []

            async def client_loop() -> None:
                for _ in range(10):
                    started = time.perf_counter()
                    await api.get(path, headers=headers)
                    times.append(time.perf_counter() - started)

            await asyncio.gather(*(client_loop() for _ in range(50)))
            return sorted(times)

        trivial = await measure("/healthz", {})
        licences = await measure(f"/api/v1/customers/{tenant.customer_id}/licences", tenant.customer_manager.headers)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))]

    return {
        "read_p50_ms": pct(licences, 0.5) * 1000,
        "read_p99_ms": pct(licences, 0.99) * 1000,
        "trivial_p50_ms": pct(trivial, 0.5) * 1000,
        "trivial_p99_ms": pct(trivial, 0.99) * 1000,
        "read_p50_ratio": pct(licences, 0.5) / pct(trivial, 0.5),
        "read_p99_ratio": pct(licences, 0.99) / pct(trivial, 0.99),
    }


@contextlib.contextmanager
def _smtp_relay() -> Iterator[int]:
    """An SMTP server in a process of its own that accepts and discards mail: like a production relay, its work
    is not counted as ours."""
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink", "-l", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield port
    finally:
        relay.terminate()
        relay.wait()


async def main() -> dict[str, float]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=shutil.which("temporal", path=str(Path(sys.executable).parent)),
        data_converter=pydantic_data_converter,
        search_attributes=ALL_KEYS,
        dev_server_log_level="error",
    )
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as workdir, _smtp_relay() as smtp_port:
        url = os.environ.get("LICENSING_BENCH_DATABASE_URL") or f"sqlite:///{workdir}/bench.db"
        upgrade_to_head(url)
        engine = create_engine(url, pool_size=20, max_overflow=20)
        sessions = create_session_factory(engine)
        settings = Settings(database_url=url, task_queue=f"bench-{uuid.uuid4()}", smtp_port=smtp_port)
        for name, step in (
            # Orders first: the worker process checks recent blocks for their terms when it starts (reconcile),
            # and the other steps leave blocks without terms behind.
            ("order throughput", order_throughput(env, settings, sessions)),
            ("expiry", expiry_ratio(sessions)),
            ("import", import_ratio(sessions)),
            ("allocation race", allocation_race(sessions)),
            ("read latency", read_latency(settings, sessions, env.client)),
            ("worker memory", worker_memory(env, settings)),
        ):
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            figures.update(await step)
        await engine.dispose()
    await env.shutdown()
    figures["bench_process_peak_rss_mb"] = rss_mb()
    return figures


GOALS = {
    "expiry_10k_vs_raw_update": "<= 2",
    "import_10k_vs_raw_insert": "<= 5",
    "allocation_race_double_allocations": "== 0",
    "order_throughput_ratio": ">= 0.7",
}


if __name__ == "__main__":
    results = asyncio.run(main())
    print(f"{'figure':40} {'value':>12}  goal")
    for name, value in results.items():
        print(f"{name:40} {value:12.3f}  {GOALS.get(name, '')}")
    print(json.dumps({name: round(value, 4) for name, value in results.items()}))
