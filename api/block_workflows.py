"""How the API ends a trial early on upgrade, through `licence-block-{block_id}`."""

import asyncio
import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.clock import now
from db import blocks
from payloads.blocks import ExpireBlock, ExpireNow
from payloads.common import Actor
from workflows.block import LicenceBlockWorkflow, block_workflow_id

log = logging.getLogger(__name__)

# A running worker ends a trial within a second or two; past this, none is taking the term's tasks.
WORKFLOW_WITHIN_SECONDS = 10.0
# The workflow (or Temporal) cannot be reached: the block is expired in the database all the same.
UNREACHABLE = {
    RPCStatusCode.NOT_FOUND,  # its workflow is gone
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
}
UPGRADED = "the customer was upgraded"


async def expire_now(
    client: Client, sessions: async_sessionmaker[AsyncSession], block_id: uuid.UUID, actor: Actor
) -> None:
    """End a block's term at once through its workflow (which then sends the summary). The upgrade never leaves
    trial licences running: a block whose workflow is gone, or does not answer (no worker, Temporal away), is
    expired in the database directly. Its workflow finds it expired and sends the summary: when a worker runs
    again if the request reached it, else when the trial's term was to end."""
    handle = client.get_workflow_handle_for(LicenceBlockWorkflow.run, block_workflow_id(block_id))
    try:
        async with asyncio.timeout(WORKFLOW_WITHIN_SECONDS):
            await handle.execute_update(LicenceBlockWorkflow.expire_now, ExpireNow(actor=actor))
        return
    except WorkflowUpdateFailedError:
        # Expired, or expiring: another upgrade at once (or the term's own end) is expiring it this moment. Its
        # write is awaited (the block's row lock; a no-op once it has landed), so this one answers after it too.
        pass
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        log.warning("the term of trial block %s did not answer; expiring the block directly", block_id)
    except RPCError as error:
        if error.status not in UNREACHABLE:
            raise
        log.warning("the term of trial block %s cannot be reached (%s); expiring the block directly", block_id, error)
    await blocks.expire_block(sessions, ExpireBlock(block_id=block_id, at=now(), actor=actor, reason=UPGRADED))
