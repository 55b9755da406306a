"""Leave a program without the interpreter's finalisation.

The Temporal SDK's runtime keeps threads of its own (Rust's) that may call into Python while the interpreter
shuts down; now and then the process then aborts ("Fatal Python error: PyGILState_Release", exit -6/134) after
its work was done and printed. A program that has finished flushes what it wrote and exits with its own code.
"""

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn


def exit_code(leaving: SystemExit) -> int:
    """`sys.exit`'s rules: None is 0, an int is itself, anything else is printed and is 1."""
    if leaving.code is None:
        return 0
    if isinstance(leaving.code, int):
        return leaving.code
    sys.stderr.write(f"{leaving.code}\n")
    return 1


def run_then_leave(program: Callable[[], object]) -> NoReturn:
    try:
        program()
        code = 0
    except SystemExit as leaving:
        code = exit_code(leaving)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be told
            stream.flush()
    os._exit(code)
