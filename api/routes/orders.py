"""Licence orders: request (customer side), Requested Orders, assign and reject (partner side), cancel."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api import auth, clock, idempotency, order_workflows, paging
from api.auth import Principal
from api.deps import CurrentUser, ReaderDep, ReadingCaller, SessionDep, SettingsDep, TemporalDep
from api.schemas import BlockRef, OrderCreate, OrderOut, OrderReject, Page
from db import directory
from db.models import Customer, LicenceBlock, LicenceOrder
from db.orders import waiting_requests
from licensing.config import Settings
from licensing.orders import resuming
from payloads.common import Actor
from payloads.orders import AssignRequest, CancelRequest, OrderOutcome, RejectRequest
from rules.errors import Conflict, InvalidInput, NotFound
from rules.orders import OrderDecision, OrderStatus, check_waiting, decide
from workflows import decisions

router = APIRouter(tags=["licence orders"])


def _as_out(o: LicenceOrder, block: BlockRef | None, customer_name: str) -> OrderOut:
    return OrderOut(
        id=o.id,
        customer_id=o.customer_id,
        customer_name=customer_name,
        partner_id=o.partner_id,
        quantity=o.quantity,
        status=o.status,
        requested_at=o.requested_at,
        requested_by_id=o.requested_by_id,
        decided_at=o.decided_at,
        decided_by_id=o.decided_by_id,
        reject_reason=o.reject_reason,
        block=block,
    )


async def _out(session: AsyncSession, orders: list[LicenceOrder]) -> list[OrderOut]:
    blocks = {
        b.order_id: BlockRef(id=b.id, expires_at=b.expires_at)
        for b in (
            await session.execute(select(LicenceBlock).where(LicenceBlock.order_id.in_([o.id for o in orders])))
        ).scalars()
    }
    customers = {o.customer_id for o in orders}
    found = await session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(customers)))
    names = {customer_id: name for customer_id, name in found}
    return [_as_out(o, blocks.get(o.id), names[o.customer_id]) for o in orders]


async def _read_order(session: AsyncSession, order_id: uuid.UUID) -> tuple[LicenceOrder, str]:
    """The order as the database holds it now, and its customer's name."""
    found = await session.execute(
        select(LicenceOrder, Customer.name)
        .join(Customer, Customer.id == LicenceOrder.customer_id)
        .where(LicenceOrder.id == order_id)
        .execution_options(populate_existing=True)
    )
    row = found.first()
    if row is None:
        raise NotFound(f"licence order {order_id} not found")
    order, customer_name = row
    return order, customer_name


async def _page(
    session: AsyncSession, scope: ColumnElement[bool], status: OrderStatus | None, page: paging.PageRequest
) -> Page[OrderOut]:
    """Orders in `scope` (a customer's or a partner's), optionally of one status, newest first."""
    query = select(LicenceOrder).where(scope)
    if status is not None:
        query = query.where(LicenceOrder.status == status.value)
    ordered = paging.newest_first(query, page, LicenceOrder.requested_at, LicenceOrder.id)
    rows = list((await session.execute(ordered)).scalars())
    return Page(
        items=await _out(session, rows[: page.limit]), next_cursor=paging.next_cursor(rows, page, "requested_at", "id")
    )


StatusFilter = Annotated[OrderStatus | None, Query(description="only orders in this status")]


@router.post("/customers/{customer_id}/licence-orders", status_code=status.HTTP_201_CREATED, response_model=OrderOut)
async def request_licences(
    customer_id: uuid.UUID,
    body: OrderCreate,
    request: Request,
    reader: ReaderDep,
    caller: ReadingCaller,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> OrderOut:
    """Request licences for a customer (its managers, or its partner's in manage mode)."""
    if body.quantity > settings.max_order_quantity:
        raise InvalidInput(f"quantity: at most {settings.max_order_quantity} licences can be requested at once")
    customer = await directory.get_customer(reader, customer_id)
    actor = auth.act_for_customer(caller, customer)
    key = idempotency.keyed_use(request)
    order_id = order_workflows.new_order_id(
        key, requester=caller.user_id, customer_id=customer.id, body=body.model_dump_json()
    )
    # A keyed retry whose first attempt (answered 503) saved the order since: that order is the answer.
    if key is not None and (made := await reader.get(LicenceOrder, order_id)) is not None:
        return (await _out(reader, [made]))[0]
    # Answered here without starting a workflow; saving the order checks again, under a lock.
    waiting = await waiting_requests(reader, customer.id)
    check_waiting(waiting=waiting, limit=settings.max_open_orders_per_customer)
    await reader.close()  # no transaction stays open while the workflow works
    registered = await order_workflows.request_order(
        temporal,
        settings,
        order_id=order_id,
        partner_id=customer.partner_id,
        customer_id=customer.id,
        quantity=body.quantity,
        actor=actor,
    )
    if registered is None:  # a keyed retry of a request whose workflow has ended since
        return await _made_earlier(reader, order_id)
    # The workflow answers once its activity committed the order: its answer is what the database holds.
    saved = LicenceOrder(
        id=registered.order_id,
        customer_id=customer.id,
        partner_id=customer.partner_id,
        quantity=body.quantity,
        status=registered.status.value,
        requested_at=registered.requested_at,
        requested_by_id=caller.user_id,
    )
    return _as_out(saved, None, customer.name)


async def _made_earlier(session: AsyncSession, order_id: uuid.UUID) -> OrderOut:
    order = await session.get(LicenceOrder, order_id)
    if order is None:
        raise Conflict(
            "this request did not become an order when it was first made (it was refused); "
            "make a new request with a new Idempotency-Key"
        )
    return (await _out(session, [order]))[0]


@router.get("/customers/{customer_id}/licence-orders", response_model=Page[OrderOut])
async def customer_orders(
    customer_id: uuid.UUID,
    session: SessionDep,
    caller: CurrentUser,
    status: StatusFilter = None,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[OrderOut]:
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    return await _page(session, LicenceOrder.customer_id == customer_id, status, page)


@router.get("/partners/{partner_id}/licence-orders", response_model=Page[OrderOut])
async def partner_orders(
    partner_id: uuid.UUID,
    session: SessionDep,
    caller: CurrentUser,
    status: StatusFilter = None,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[OrderOut]:
    """Partner Licences > Orders; `?status=requested` is the Requested Orders tab."""
    auth.see_partner(caller, partner_id)
    await directory.get_partner(session, partner_id)
    return await _page(session, LicenceOrder.partner_id == partner_id, status, page)


@router.get("/licence-orders/{order_id}", response_model=OrderOut)
async def get_order(order_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> OrderOut:
    order, _ = await _read_order(session, order_id)
    auth.see_order(caller, order)
    return (await _out(session, [order]))[0]


Authorize = Callable[[LicenceOrder], Awaitable[Actor]]
# The decision's request to the order's workflow, made for whoever decides.
Asked = Callable[[Actor], order_workflows.DecisionRequest]


def _decided(
    order: LicenceOrder, customer_name: str, actor: Actor, outcome: OrderOutcome, reason: str | None
) -> OrderOut:
    """The order as the decision's transaction left it (the workflow answers once it committed)."""
    block = None
    if outcome.block_id is not None and outcome.expires_at is not None:
        block = BlockRef(id=outcome.block_id, expires_at=outcome.expires_at)
    decided = {
        "status": outcome.status.value,
        "decided_at": outcome.decided_at,
        "decided_by_id": actor.user_id,
        "reject_reason": reason,
    }
    return _as_out(order, block, customer_name).model_copy(update=decided)


async def _decide(
    request: Request,
    reader: AsyncSession,
    temporal: Client,
    settings: Settings,
    order_id: uuid.UUID,
    decision: OrderDecision,
    authorize: Authorize,
    asked: Asked,
    reason: str | None = None,
) -> OrderOut:
    """Check the caller and what the database says, send the decision to the order's workflow, and answer
    with what it did. No transaction is open while the workflow works: on SQLite it would hold the lock the
    activity needs."""
    order, customer_name = await _read_order(reader, order_id)
    actor = await authorize(order)
    update_id = order_workflows.decision_id(
        idempotency.keyed_use(request), decision=decision.value, decider=actor.user_id, order_id=order.id
    )
    if _made_by(order, update_id):
        return (await _out(reader, [order]))[0]
    decide(OrderStatus(order.status), decision)  # 409 naming the order's status and what was asked
    await reader.close()  # no transaction stays open while the workflow works
    try:
        outcome = await order_workflows.decide(temporal, order.id, decision, asked(actor), None, update_id)
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        # The workflow has ended: it decided the order meanwhile, or it was terminated by hand and left the
        # order waiting; then the decision goes to a run started for it.
        order, _ = await _read_order(reader, order_id)
        if _made_by(order, update_id):
            return (await _out(reader, [order]))[0]
        decide(OrderStatus(order.status), decision)
        await reader.close()
        resumed = resuming(settings, order, clock.now())
        outcome = await order_workflows.decide(temporal, order.id, decision, asked(actor), resumed, update_id)
    if outcome.decided_at is not None:
        return _decided(order, customer_name, actor, outcome, reason)
    # An answer from a worker older than this API, without the decision's time: read the order back.
    return (await _out(reader, [(await _read_order(reader, order_id))[0]]))[0]


def _made_by(order: LicenceOrder, update_id: str | None) -> bool:
    """The order was decided by this keyed decision: a retry of an attempt answered 503 (the workflow had not
    answered in time) after which the decision was made. Its answer is the order as that decision left it."""
    return update_id is not None and order.decision_key == decisions.key(update_id)


def _partner_decides(caller: Principal) -> Authorize:
    async def authorize(order: LicenceOrder) -> Actor:
        return auth.decide_order(caller, order)

    return authorize


@router.post("/licence-orders/{order_id}/assign", response_model=OrderOut)
async def assign_order(
    order_id: uuid.UUID,
    request: Request,
    reader: ReaderDep,
    caller: ReadingCaller,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> OrderOut:
    """Assign the licences from the partner's stock. 409 naming the shortfall when the stock is short."""

    return await _decide(
        request,
        reader,
        temporal,
        settings,
        order_id,
        OrderDecision.ASSIGN,
        _partner_decides(caller),
        lambda actor: AssignRequest(actor=actor),
    )


@router.post("/licence-orders/{order_id}/reject", response_model=OrderOut)
async def reject_order(
    order_id: uuid.UUID,
    body: OrderReject,
    request: Request,
    reader: ReaderDep,
    caller: ReadingCaller,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> OrderOut:
    """Reject a requested order; the reason is emailed to the customer's managers."""

    return await _decide(
        request,
        reader,
        temporal,
        settings,
        order_id,
        OrderDecision.REJECT,
        _partner_decides(caller),
        lambda actor: RejectRequest(actor=actor, reason=body.reason),
        reason=body.reason,
    )


@router.post("/licence-orders/{order_id}/cancel", response_model=OrderOut)
async def cancel_order(
    order_id: uuid.UUID,
    request: Request,
    reader: ReaderDep,
    caller: ReadingCaller,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> OrderOut:
    """The requester's side withdraws a request that is still waiting."""

    async def authorize(order: LicenceOrder) -> Actor:
        auth.see_order(caller, order)
        return auth.act_for_customer(caller, await directory.get_customer(reader, order.customer_id))

    return await _decide(
        request,
        reader,
        temporal,
        settings,
        order_id,
        OrderDecision.CANCEL,
        authorize,
        lambda actor: CancelRequest(actor=actor),
    )
