"""`make bench`, the figures that need Temporal workers: order throughput against an order-shaped workflow (with
the CPU each costs here and in the server), and a real worker process's memory with 10,000 sleeping terms."""

import asyncio
import contextlib
import os
import resource
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from licensing.config import Settings
from licensing.terms import start_licence_term
from payloads.blocks import LicenceBlockInput
from tests import factories
from tests.processes import start_worker
from tests.smtp_server import free_port

Sessions = async_sessionmaker[AsyncSession]


@activity.defn(name="bench_noop")
async def bench_noop(step: int) -> int:
    return step


@workflow.defn(name="BenchTermShape", sandboxed=False)
class BenchTermShape:
    """The shape of a licence term without its work: it sleeps."""

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(days=365))


class BenchTermStarter:
    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    @activity.defn(name="bench_start_term")
    async def start_term(self, step: int) -> int:
        await self._client.start_workflow(
            BenchTermShape.run, id=f"bench-term-{uuid.uuid4()}", task_queue=self._task_queue
        )
        return step


@workflow.defn(name="BenchOrderShape", sandboxed=False)
class BenchOrderShape:
    """The shape of an order without its work: an activity, wait for an update, two activities. With `term`,
    the second activity starts a sleeping workflow, as assigning an order starts its licence term."""

    def __init__(self) -> None:
        self.decided = False

    @workflow.run
    async def run(self, term: bool) -> None:
        await workflow.execute_activity(bench_noop, 1, start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self.decided)
        second = "bench_start_term" if term else "bench_noop"
        await workflow.execute_activity(second, 2, start_to_close_timeout=timedelta(seconds=30))
        await workflow.execute_activity(bench_noop, 3, start_to_close_timeout=timedelta(seconds=30))

    @workflow.update
    async def decide(self) -> None:
        self.decided = True


def _cpu_seconds() -> tuple[float, float, float, float]:
    """CPU time used so far by this process (all its threads), and by the bench's child processes: the Temporal
    server, the SMTP relay and our worker (`python worker.py`)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    ticks = os.sysconf("SC_CLK_TCK")
    server = relay = worker = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid():
                continue
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / ticks
        if b"aiosmtpd" in command:
            relay += used
        elif b"worker.py" in command:
            worker += used
        else:
            server += used
    return own.ru_utime + own.ru_stime, server, relay, worker


@dataclass
class _Tally:
    """What the timed rounds of one kind of lifecycle added up to."""

    items: int = 0
    seconds: float = 0.0
    process_cpu: float = 0.0
    server_cpu: float = 0.0
    relay_cpu: float = 0.0
    worker_cpu: float = 0.0

    def add(self, items: int, seconds: float, before: tuple[float, ...], after: tuple[float, ...]) -> None:
        self.items += items
        self.seconds += seconds
        used = [a - b for a, b in zip(after, before, strict=True)]
        self.process_cpu += used[0]
        self.server_cpu += used[1]
        self.relay_cpu += used[2]
        self.worker_cpu += used[3]

    def figures(self, label: str) -> dict[str, float]:
        return {
            f"{label}_per_second": self.items / self.seconds,
            f"{label}_process_cpu_ms_each": self.process_cpu * 1000 / self.items,
            f"{label}_worker_cpu_ms_each": self.worker_cpu * 1000 / self.items,
            f"{label}_server_cpu_ms_each": self.server_cpu * 1000 / self.items,
            f"{label}_relay_cpu_ms_each": self.relay_cpu * 1000 / self.items,
        }


# Lifecycles run before timing, for ours and the baselines alike: a running service is warm (its routes built,
# its workflow modules imported and its connections open), and the first few of a fresh one are not.
WARM_UP = 3
# Ours and the two baselines take turns, in the opposite order each round, so that none is always first or
# always last on a server whose history grows as the bench goes on.
ROUNDS = 2


@contextlib.asynccontextmanager
async def _worker_process(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A real `python worker.py` on the settings' task queue, polling once its metrics endpoint answers."""
    metrics_address = f"127.0.0.1:{free_port()}"
    worker = start_worker(env, settings, metrics_address=metrics_address)
    try:
        async with httpx.AsyncClient(base_url=f"http://{metrics_address}") as metrics:
            while not await _answers(metrics):
                assert worker.poll() is None, "the worker process exited"
                await asyncio.sleep(0.2)
        yield worker
    finally:
        worker.terminate()
        worker.wait()


async def order_throughput(
    env: WorkflowEnvironment, settings: Settings, sessions: Sessions, count: int = 30
) -> dict[str, float]:
    """Our orders through the API (in this process) and `python worker.py` (a process of its own, as deployed:
    DESIGN runs the API and the worker apart), against the baselines' workflows with their worker in this process.
    Every process's CPU is counted: this one (API, HTTP client, the baselines' client and worker), the worker's,
    the server's and the relay's."""
    client = env.client
    # A customer may have 20 requests waiting at once: ten customers (each with its own partner) share the load.
    tenants = [await factories.tenant(sessions, stock=count * ROUNDS + WARM_UP) for _ in range(10)]
    app = create_app(settings, sessions=sessions, temporal=client)
    queue = f"bench-{uuid.uuid4()}"
    starter = BenchTermStarter(client, queue)
    async with (
        _worker_process(env, settings),
        Worker(
            client,
            task_queue=queue,
            workflows=[BenchOrderShape, BenchTermShape],
            activities=[bench_noop, starter.start_term],
        ),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench/api/v1") as api,
    ):

        async def order(n: int) -> None:
            tenant = tenants[n % len(tenants)]
            requested = await api.post(
                f"/customers/{tenant.customer_id}/licence-orders",
                json={"quantity": 1},
                headers=tenant.customer_manager.headers,
            )
            order_id = requested.raise_for_status().json()["id"]
            assigned = await api.post(f"/licence-orders/{order_id}/assign", headers=tenant.partner_manager.headers)
            assigned.raise_for_status()
            await client.get_workflow_handle(f"licence-order-{order_id}").result()

        def shape(term: bool) -> Callable[[int], Awaitable[None]]:
            async def lifecycle(n: int) -> None:
                handle = await client.start_workflow(
                    BenchOrderShape.run, term, id=f"bench-{uuid.uuid4()}", task_queue=queue
                )
                await handle.execute_update(BenchOrderShape.decide)
                await handle.result()

            return lifecycle

        kinds = {"order": order, "order_shaped": shape(False), "order_shaped_with_term": shape(True)}
        tallies = {label: _Tally() for label in kinds}
        for lifecycle in kinds.values():
            await asyncio.gather(*(lifecycle(n) for n in range(WARM_UP)))
        for round_number in range(ROUNDS):
            for label in list(kinds) if round_number % 2 == 0 else list(reversed(kinds)):
                cpu, started = _cpu_seconds(), time.perf_counter()
                await asyncio.gather(*(kinds[label](n) for n in range(count)))
                tallies[label].add(count, time.perf_counter() - started, cpu, _cpu_seconds())
    figures: dict[str, float] = {}
    for label, tally in tallies.items():
        figures |= tally.figures(label)
    ours, baseline = figures.pop("order_per_second"), figures["order_shaped_per_second"]
    return figures | {
        "orders_per_second": ours,
        "order_throughput_ratio": ours / baseline,
        # What an order that cost nothing of its own would score: the term workflow DESIGN asks of every
        # assigned order is server work the baseline does not do.
        "order_ceiling_ratio": figures["order_shaped_with_term_per_second"] / baseline,
        "order_throughput_vs_ceiling": ours / figures["order_shaped_with_term_per_second"],
    }


def rss_mb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _answers(metrics: httpx.AsyncClient) -> bool:
    try:
        return (await metrics.get("/metrics")).status_code == 200
    except httpx.TransportError:
        return False


async def _workflow_tasks_done(metrics: httpx.AsyncClient) -> float:
    """How many workflow tasks the worker has completed, from its Prometheus endpoint (0 until it answers)."""
    try:
        text = (await metrics.get("/metrics")).text
    except httpx.TransportError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("temporal_workflow_task_execution_latency_count")
    )


async def worker_memory(env: WorkflowEnvironment, settings: Settings, terms: int = 10_000) -> dict[str, float]:
    """A real `python worker.py` process: its peak RSS once it is polling, then with `terms` licence terms
    started and asleep (each ran its first workflow task and waits on its timer)."""
    metrics_address = f"127.0.0.1:{free_port()}"
    queue = f"bench-terms-{uuid.uuid4()}"
    worker = start_worker(env, settings.model_copy(update={"task_queue": queue}), metrics_address=metrics_address)
    try:
        async with httpx.AsyncClient(base_url=f"http://{metrics_address}") as metrics:
            while not await _answers(metrics):
                assert worker.poll() is None, "the worker process exited"
                await asyncio.sleep(0.2)
            await asyncio.sleep(2)
            idle = rss_mb(worker.pid)
            now = datetime.now(UTC)
            limit = asyncio.Semaphore(64)

            async def start(n: int) -> None:
                async with limit:
                    await start_licence_term(
                        env.client,
                        queue,
                        LicenceBlockInput(
                            block_id=uuid.uuid4(),
                            partner_id=uuid.uuid4(),
                            customer_id=uuid.uuid4(),
                            kind="premium",
                            quantity=1 + n % 50,
                            starts_at=now,
                            expires_at=now + timedelta(days=365),
                            renewal_reminders=settings.renewal_reminder_offsets,
                        ),
                    )

            started = time.perf_counter()
            await asyncio.gather(*(start(n) for n in range(terms)))
            while await _workflow_tasks_done(metrics) < terms:
                assert worker.poll() is None, "the worker process exited"
                assert time.perf_counter() - started < 900, "the worker did not take up the terms in time"
                await asyncio.sleep(0.5)
            busy = rss_mb(worker.pid)
            current = rss_mb(worker.pid, "VmRSS")
    finally:
        worker.terminate()
        worker.wait()
    return {
        "worker_rss_mb_idle": idle,
        "worker_rss_mb_10k_terms": busy,
        "worker_rss_mb_10k_terms_now": current,
        "worker_rss_10k_terms_vs_idle": busy / idle,
    }
