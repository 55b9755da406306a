"""`make fuzz`: a bounded schemathesis run against the live app with real tokens.

It starts the embedded stack (`licensing dev`) on free ports in a temporary folder, then runs schemathesis's
examples, coverage and fuzzing phases over /api/v1 as an operator, as a partner manager and as a customer manager,
and over /scim/v2 with a SCIM token, checking `not_a_server_error` and `response_schema_conformance`. Exits
non-zero on any finding.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The demo users `licensing dev` seeds (licensing/demo.py).
OPERATOR = "operator@example.com"
PARTNER_MANAGER = "pat@northwind.example"
CUSTOMER_MANAGER = "casey@contoso.example"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(port: int, stack: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            if stack.poll() is not None:
                raise SystemExit("the stack stopped before it was ready") from None
            time.sleep(0.5)
    raise SystemExit("the stack did not get ready in time")


def _fresh_token(env: dict[str, str], email: str) -> str:
    """A new token for a demo user, restoring their access: an earlier run may have removed them or replaced it."""
    issued = subprocess.run(
        [str(BIN / "licensing"), "issue-token", "--email", email],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return issued.stdout.strip().splitlines()[-1]


def _scim_token(api: str, customer_id: str, manager_token: str) -> str:
    request = urllib.request.Request(
        f"{api}/api/v1/customers/{customer_id}/scim-tokens",
        method="POST",
        headers={"Authorization": f"Bearer {manager_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.load(answer)["token"])


def _schemathesis(api: str, token: str, include: str) -> int:
    command = [
        str(BIN / "schemathesis"),
        "run",
        f"{api}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--include-path-regex",
        include,
        "--phases",
        "examples,coverage,fuzzing",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--max-examples",
        "15",
        "--seed",
        "42",
        "--workers",
        "1",
        "--no-color",
    ]
    print("$", " ".join(command).replace(token, "TOKEN"), flush=True)
    return subprocess.run(command, cwd=ROOT, check=False).returncode


def main() -> int:
    with tempfile.TemporaryDirectory() as var:
        port = _free_port()
        env = {
            **os.environ,
            "LICENSING_VAR_DIR": var,
            "LICENSING_DATABASE_URL": f"sqlite:///{var}/licensing.db",
            "LICENSING_TEMPORAL_ADDRESS": f"127.0.0.1:{_free_port()}",
            "LICENSING_UI_PORT": str(_free_port()),
            "LICENSING_SMTP_PORT": str(_free_port()),
            "LICENSING_API_PORT": str(port),
            "LICENSING_WORKER_METRICS_ADDRESS": f"127.0.0.1:{_free_port()}",
        }
        stack = subprocess.Popen(
            [str(BIN / "licensing"), "dev"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait(port, stack)
            api = f"http://127.0.0.1:{port}"
            customer_id = json.loads((Path(var) / "demo-tokens.json").read_text())["customer_id"]
            # Each run may remove users or replace their tokens (DELETE /users/{id}, POST /users/{id}/token), the
            # demo ones included, so every run starts with a token issued just before it.
            runs = [
                _schemathesis(api, _fresh_token(env, email), "^/api/v1/")
                for email in (OPERATOR, PARTNER_MANAGER, CUSTOMER_MANAGER)
            ]
            scim_token = _scim_token(api, customer_id, _fresh_token(env, CUSTOMER_MANAGER))
            runs.append(_schemathesis(api, scim_token, "^/scim/v2/"))
        finally:
            os.killpg(stack.pid, signal.SIGINT)
            try:
                stack.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(stack.pid, signal.SIGKILL)
    failed = sum(1 for code in runs if code != 0)
    print(f"schemathesis: {len(runs) - failed} runs clean, {failed} with findings")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
