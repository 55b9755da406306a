"""A program leaves with its own exit code and everything it printed, without the interpreter's finalisation (where
the Temporal SDK's threads now and then abort the process after its work is done)."""

import subprocess
import sys

import pytest

PROGRAM = """
import sys
from licensing.leaving import run_then_leave

def work() -> None:
    print("done the work")
    {ending}

run_then_leave(work)
"""


@pytest.mark.parametrize(
    ("ending", "code", "out", "err"),
    [
        ("", 0, "done the work\n", ""),
        ("raise SystemExit(3)", 3, "done the work\n", ""),
        ("raise SystemExit('bad settings, nothing started')", 1, "done the work\n", "bad settings, nothing started\n"),
        ("sys.exit()", 0, "done the work\n", ""),
    ],
)
def test_a_program_leaves_with_its_code_and_its_output(ending: str, code: int, out: str, err: str) -> None:
    left = subprocess.run(
        [sys.executable, "-c", PROGRAM.format(ending=ending)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (left.returncode, left.stdout, left.stderr) == (code, out, err)
