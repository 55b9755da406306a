"""Replay safety: every saved history (tests/histories/, captured by scripts/capture_histories.py) replays on
today's workflow code. A licence term lives 12 months and sees many deploys; a change that alters commands
must ship behind `workflow.patched()` (docs/changing-workflows.md)."""

import ast
import asyncio
import importlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from licensing.temporal import WORKFLOWS
from payloads.orders import LicenceOrderInput, OrderOutcome
from workflows.order import LicenceOrderWorkflow

WORKFLOW_SOURCES = Path(__file__).parent.parent / "workflows"
HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
WORKFLOW_TYPES = {"LicenceOrderWorkflow", "LicenceBlockWorkflow", "LearnerImportWorkflow"}


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_there_are_histories_of_every_workflow_type_open_and_closed() -> None:
    names = {path.stem for path in HISTORIES}
    types = {
        _history(path).events[0].workflow_execution_started_event_attributes.workflow_type.name for path in HISTORIES
    }
    assert (types, any(n.endswith("-open") for n in names), any(n.endswith("-closed") for n in names)) == (
        WORKFLOW_TYPES,
        True,
        True,
    )


def _patches_in_code() -> set[str]:
    """The ids given to `workflow.patched(...)` anywhere in workflows/, each a module-level constant."""
    ids = set()
    for source in sorted(WORKFLOW_SOURCES.glob("*.py")):
        module = importlib.import_module(f"workflows.{source.stem}")
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "workflow.patched":
                (argument,) = node.args
                assert isinstance(argument, ast.Name), f"{source.name}: a patch id should be a named constant"
                ids.add(getattr(module, argument.id))
    return ids


def _patches_in_histories() -> set[str]:
    recorded = set()
    for path in HISTORIES:
        for event in _history(path).events:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                recorded.add(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return recorded


def test_every_patch_has_a_saved_history_that_takes_its_new_path() -> None:
    """A patch's new path replays only if some history took it: `make histories` must capture one (a scenario in
    scripts/capture_histories.py) before the patch lands."""
    in_code = _patches_in_code()
    assert len(in_code) >= 6
    assert in_code - _patches_in_histories() == set()


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_a_saved_history_replays_on_todays_code(path: Path) -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    await replayer.replay_workflow(_history(path))


@workflow.defn(name="LicenceOrderWorkflow", sandboxed=False)
class PatchedOrder(LicenceOrderWorkflow):
    """Tomorrow's order workflow: waits a moment before saving the order, but only in new runs."""

    @workflow.run
    async def run(self, order: LicenceOrderInput) -> OrderOutcome | None:
        if workflow.patched("settle-before-saving"):
            await asyncio.sleep(timedelta(seconds=1).total_seconds())
        return await super().run(order)


@workflow.defn(name="LicenceOrderWorkflow", sandboxed=False)
class UnpatchedOrder(LicenceOrderWorkflow):
    """The same change made carelessly: every run, old ones too, gets a new timer."""

    @workflow.run
    async def run(self, order: LicenceOrderInput) -> OrderOutcome | None:
        await asyncio.sleep(1)
        return await super().run(order)


ORDER_HISTORY = next(p for p in HISTORIES if p.stem == "order-assigned-closed")


async def test_a_patched_change_still_replays_an_old_order() -> None:
    replayer = Replayer(workflows=[PatchedOrder], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(_history(ORDER_HISTORY), raise_on_replay_failure=False)
    assert result.replay_failure is None


async def test_the_same_change_unpatched_breaks_the_old_order() -> None:
    replayer = Replayer(workflows=[UnpatchedOrder], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(_history(ORDER_HISTORY), raise_on_replay_failure=False)
    assert result.replay_failure is not None
