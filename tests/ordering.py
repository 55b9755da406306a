"""Order workflows started the way the API starts them, on the time-skipping test server."""

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from db import orders as stored_orders
from db.models import OutboxEmail
from licensing.config import Settings
from payloads.blocks import ExpireNow
from payloads.common import SYSTEM, Actor, Role
from payloads.email import EmailsWritten
from payloads.orders import AssignRequest, CancelRequest, CloseOrder, LicenceOrderInput, OrderOutcome, PersistOrder
from rules.orders import OrderStatus
from tests import factories
from workflows.block import LicenceBlockWorkflow, block_workflow_id
from workflows.order import LicenceOrderWorkflow
from workflows.search import for_order

OrderHandle = WorkflowHandle[LicenceOrderWorkflow, OrderOutcome | None]


def actor(person: factories.Person, role: Role) -> Actor:
    return Actor(user_id=person.id, role=role)


def new_order(tenant: factories.Tenant, quantity: int, *, at: datetime, notify: bool = False) -> PersistOrder:
    """What the order workflow's first activity saves: a new order requested by the customer's manager."""
    return PersistOrder(
        order_id=uuid.uuid4(),
        partner_id=tenant.partner_id,
        customer_id=tenant.customer_id,
        quantity=quantity,
        requested_by=actor(tenant.customer_manager, Role.CUSTOMER_MANAGER),
        requested_at=at,
        notify=notify,
    )


def order_id(handle: OrderHandle) -> uuid.UUID:
    return uuid.UUID(handle.id.removeprefix("licence-order-"))


class Orders:
    """Starts order workflows and remembers them, to close them when the test ends."""

    def __init__(self, env: WorkflowEnvironment, settings: Settings) -> None:
        self.env, self.settings = env, settings
        self.started: list[OrderHandle] = []

    async def request(self, tenant: factories.Tenant, quantity: int, *, registered: bool = True) -> OrderHandle:
        """Start an order; `registered`: and wait until it is saved, as the API does."""
        new_id = uuid.uuid4()
        handle = await self.env.client.start_workflow(
            LicenceOrderWorkflow.run,
            LicenceOrderInput(
                order_id=new_id,
                partner_id=tenant.partner_id,
                customer_id=tenant.customer_id,
                quantity=quantity,
                requested_by=actor(tenant.customer_manager, Role.CUSTOMER_MANAGER),
                licence_term=self.settings.licence_term,
                reminder_after=self.settings.order_reminder_after,
            ),
            id=f"licence-order-{new_id}",
            task_queue=self.settings.task_queue,
            search_attributes=for_order(tenant.partner_id, tenant.customer_id, OrderStatus.REQUESTED.value),
        )
        self.started.append(handle)
        if registered:
            await handle.execute_update(LicenceOrderWorkflow.registered)
        return handle

    async def assign(self, handle: OrderHandle, tenant: factories.Tenant) -> OrderOutcome:
        """The partner's manager assigns the order."""
        request = AssignRequest(actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER))
        return await handle.execute_update(LicenceOrderWorkflow.assign, request)

    async def cancel(self, handle: OrderHandle, tenant: factories.Tenant) -> OrderOutcome:
        """The customer's manager withdraws the order."""
        request = CancelRequest(actor=actor(tenant.customer_manager, Role.CUSTOMER_MANAGER))
        return await handle.execute_update(LicenceOrderWorkflow.cancel, request)

    async def close_all(self) -> None:
        """Cancel what is still requested and run every order to its end: the time-skipping server does not
        move its shared clock while another test's workflow has work in flight."""
        for handle in self.started:
            with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
                await handle.execute_update(LicenceOrderWorkflow.cancel, CancelRequest(actor=SYSTEM))
            outcome = await handle.result()
            if outcome is not None and outcome.block_id is not None:
                await end_term(self.env, outcome.block_id)


def rejection(
    tenant: factories.Tenant,
    order: uuid.UUID,
    reason: str,
    *,
    at: datetime,
    notify: bool = False,
    key: str | None = None,
) -> CloseOrder:
    """The partner manager's rejection of the order, as its workflow's transaction receives it."""
    return CloseOrder(
        order_id=order,
        actor=actor(tenant.partner_manager, Role.PARTNER_MANAGER),
        status=OrderStatus.REJECTED,
        decided_at=at,
        reason=reason,
        notify=notify,
        decision_key=key,
    )


async def reject_unseen(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant: factories.Tenant,
    order: uuid.UUID,
    *,
    reason: str,
    at: datetime,
) -> None:
    """The partner's rejection committed by an update its workflow never saw (the server lost it): the order is
    rejected in the database, its emails written, not sent."""
    lost = rejection(tenant, order, reason, at=at, notify=True, key="an update the server lost")
    await claims_lapsed(sessions, await stored_orders.close_order(sessions, lost, mail_from=settings.mail_from))


async def claims_lapsed(sessions: async_sessionmaker[AsyncSession], written: EmailsWritten) -> None:
    """The activity that wrote these emails died a while ago, before sending them: its claim on them has lapsed
    (`db.outbox`), so the next attempt sends them at once."""
    lapsed = datetime.now(UTC) - timedelta(seconds=1)
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxEmail).where(OutboxEmail.id.in_(written.email_ids)).values(claimed_until=lapsed)
        )


async def decided(handle: OrderHandle) -> OrderOutcome:
    """The order's end: its decision (an order the test made is never refused)."""
    outcome = await handle.result()
    assert outcome is not None, "the request was refused"
    return outcome


async def end_term(env: WorkflowEnvironment, block_id: uuid.UUID) -> None:
    """Expire a block's term now and let its workflow finish (its timers would otherwise hold the clock)."""
    term = env.client.get_workflow_handle_for(LicenceBlockWorkflow.run, block_workflow_id(block_id))
    with contextlib.suppress(WorkflowUpdateFailedError, RPCError):
        await term.execute_update(LicenceBlockWorkflow.expire_now, ExpireNow(actor=SYSTEM))
    await term.result()
