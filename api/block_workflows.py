"""How the API ends a trial early on upgrade, through `licence-block-{block_id}`."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.clock import now
from db import blocks
from payloads.blocks import ExpireBlock, ExpireNow
from payloads.common import Actor
from workflows.block import LicenceBlockWorkflow, block_workflow_id


async def expire_now(
    client: Client, sessions: async_sessionmaker[AsyncSession], block_id: uuid.UUID, actor: Actor
) -> None:
    """End a block's term at once through its workflow (which then sends the summary). A block whose workflow
    is gone is expired directly: the upgrade must never leave trial licences running."""
    handle = client.get_workflow_handle_for(LicenceBlockWorkflow.run, block_workflow_id(block_id))
    try:
        await handle.execute_update(LicenceBlockWorkflow.expire_now, ExpireNow(actor=actor))
    except WorkflowUpdateFailedError:
        return  # already expired
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        await blocks.expire_block(
            sessions, ExpireBlock(block_id=block_id, at=now(), actor=actor, reason="the customer was upgraded")
        )
