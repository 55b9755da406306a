"""How the API talks to `licence-block-{block_id}`: start a trial's term, and end a trial early on upgrade."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.clock import now
from db import blocks
from db.models import Customer, LicenceBlock
from licensing.config import Settings
from licensing.terms import start_licence_term
from payloads.blocks import ExpireBlock, ExpireNow, LicenceBlockInput
from payloads.common import Actor
from workflows.block import LicenceBlockWorkflow, block_workflow_id


async def start_term(client: Client, settings: Settings, customer: Customer, block: LicenceBlock) -> None:
    await start_licence_term(
        client,
        settings.task_queue,
        LicenceBlockInput(
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
