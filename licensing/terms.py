"""Starting a licence block's term workflow, `licence-block-{block_id}`, exactly once per block."""

import contextlib

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import Customer, LicenceBlock
from licensing.config import Settings
from payloads.blocks import LicenceBlockInput
from rules.wording import counted
from workflows import search
from workflows.block import LicenceBlockWorkflow, block_workflow_id


async def start_licence_term(client: Client, task_queue: str, block: LicenceBlockInput, *, again: bool = False) -> None:
    """Start the term, or leave the one already running (or finished) alone: safe to call again. `again`: start
    it even if a run of it has ended (one terminated by hand while its block was active)."""
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            LicenceBlockWorkflow.run,
            block,
            id=block_workflow_id(block.block_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE if again else WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=search.for_customer(block.partner_id, block.customer_id),
            static_summary=f"Licence term: {counted(block.quantity, f'{block.kind} licence')}",
            static_details=(
                f"Block {block.block_id} of customer {block.customer_id} (partner {block.partner_id}), "
                f"{block.starts_at.isoformat()} to {block.expires_at.isoformat()}."
            ),
        )


async def start_block_term(
    client: Client, settings: Settings, customer: Customer, block: LicenceBlock, *, again: bool = False
) -> None:
    """The term of a block already in the database (a trial's, or one found without its workflow)."""
    await start_licence_term(
        client,
        settings.task_queue,
        again=again,
        block=LicenceBlockInput(
            block_id=block.id,
            partner_id=customer.partner_id,
            customer_id=customer.id,
            kind=block.kind,
            quantity=block.quantity,
            starts_at=block.starts_at,
            expires_at=block.expires_at,
            renewal_reminders=settings.renewal_reminder_offsets,
        ),
    )
