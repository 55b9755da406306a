"""A bad LICENSING_* value stops the worker and the API with a message that names the setting, not with
a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("command", [["worker.py"], ["-c", "import api.main"]], ids=["worker", "api"])
def test_a_bad_duration_setting_stops_with_a_message_naming_it(command: list[str]) -> None:
    env = {**os.environ, "LICENSING_LICENCE_TERM": "P12X", "LICENSING_TEMPORAL_ADDRESS": "127.0.0.1:1"}
    ran = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert (ran.returncode != 0, "Traceback" in ran.stderr, "LICENSING_LICENCE_TERM" in ran.stderr) == (
        True,
        False,
        True,
    ), ran.stderr[-2000:]
