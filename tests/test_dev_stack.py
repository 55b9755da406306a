"""`make run`'s stack, started the way a newcomer starts it: seed steps 1-2 with the printed tokens, then Ctrl-C,
then a second start that keeps the data and the order still waiting."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from db.migrate import ROOT
from tests.databases import backend
from tests.smtp_server import free_port


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "licensing"), "dev"],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, within_seconds: float = 120) -> str:
        deadline = time.monotonic() + within_seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"never printed {text!r}; printed:\n{''.join(self.seen[-40:])}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    var = tmp_path / "var"
    return {
        **os.environ,
        "LICENSING_VAR_DIR": str(var),
        "LICENSING_DATABASE_URL": f"sqlite:///{var / 'licensing.db'}",
        "LICENSING_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "LICENSING_UI_PORT": str(free_port()),
        "LICENSING_SMTP_PORT": str(free_port()),
        "LICENSING_API_PORT": str(free_port()),
        "LICENSING_WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
    }


@pytest.fixture
def start(stack_env: dict[str, str]) -> Iterator[Callable[[], Stack]]:
    """Starts `licensing dev` (what `make run` runs); whatever is still up at the end is killed."""
    started: list[Stack] = []

    def start_one() -> Stack:
        started.append(Stack(stack_env))
        return started[-1]

    yield start_one
    for stack in started:
        stack.kill()


@pytest.mark.skipif(backend() == "postgresql", reason="the embedded stack is SQLite by design; the SQLite pass runs it")
def test_make_run_walks_seed_steps_one_and_two_and_keeps_them_across_a_restart(
    start: Callable[[], Stack], stack_env: dict[str, str]
) -> None:
    first = start()
    first.wait_for("Press Ctrl-C to stop.")
    tokens = json.loads((Path(stack_env["LICENSING_VAR_DIR"]) / "demo-tokens.json").read_text())
    pm = {"Authorization": f"Bearer {tokens['partner_manager_token']}"}
    api = f"http://127.0.0.1:{stack_env['LICENSING_API_PORT']}/api/v1"
    with httpx.Client(base_url=api, timeout=30) as client:
        order = client.post(f"/customers/{tokens['customer_id']}/licence-orders", json={"quantity": 5}, headers=pm)
        assigned = client.post(f"/licence-orders/{order.json()['id']}/assign", headers=pm)
        waiting = client.post(f"/customers/{tokens['customer_id']}/licence-orders", json={"quantity": 2}, headers=pm)
    first.wait_for("mail  to=casey@contoso.example")
    assert (order.status_code, assigned.json()["status"], waiting.status_code) == (201, "assigned", 201)
    assert first.interrupt() == 0

    second = start()
    second.wait_for(tokens["partner_manager_token"])
    second.wait_for("Press Ctrl-C to stop.")
    with httpx.Client(base_url=api, timeout=30) as client:
        kept = client.get(f"/licence-orders/{order.json()['id']}", headers=pm)
        cancelled = client.post(f"/licence-orders/{waiting.json()['id']}/cancel", headers=pm)
        partner = client.get(f"/partners/{tokens['partner_id']}", headers=pm)
    assert (kept.json()["status"], cancelled.json()["status"], partner.json()["licence_stock"]) == (
        "assigned",
        "cancelled",
        95,
    )
    assert second.interrupt() == 0
