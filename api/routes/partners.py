"""Partners, their licence stock and their customers (the multi-tenant view)."""

import logging
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select
from temporalio.service import RPCError, RPCStatusCode

from api import auth, paging
from api.clock import now
from api.deps import CurrentUser, SessionDep, SettingsDep, TemporalDep
from api.errors import Forbidden
from api.schemas import (
    CustomerCreate,
    CustomerOut,
    CustomerSummary,
    LicenceCounts,
    NextExpiry,
    Page,
    PartnerCreate,
    PartnerOut,
    StockCredit,
    StockMoveOut,
    StockOut,
    StockStatement,
)
from db import blocks, directory, stock
from db.models import AuditEvent, Customer, LicenceBlock, Partner
from licensing.terms import start_block_term
from payloads.common import Role
from rules.durations import InvalidDuration, add_duration, parse_duration
from rules.errors import InvalidInput
from rules.licences import term_end

log = logging.getLogger(__name__)
# Temporal away for a moment, not refusing: only then is a saved trial left to the worker's repair.
TEMPORAL_AWAY = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
router = APIRouter(tags=["partners"])


@router.post("/partners", status_code=status.HTTP_201_CREATED, response_model=PartnerOut)
async def create_partner(body: PartnerCreate, session: SessionDep, caller: CurrentUser) -> PartnerOut:
    auth.require_operator(caller)
    async with session.begin():
        partner = await directory.create_partner(session, name=body.name, actor=caller.actor, at=now())
    return PartnerOut(id=partner.id, name=partner.name, licence_stock=partner.licence_stock)


@router.get("/partners", response_model=Page[PartnerOut])
async def list_partners(
    session: SessionDep, caller: CurrentUser, page: paging.PageRequest = Depends(paging.page_request)
) -> Page[PartnerOut]:
    """Every partner with its licence stock, newest first, for an operator; a partner's manager sees its own."""
    query = select(Partner)
    if caller.role is Role.PARTNER_MANAGER:
        query = query.where(Partner.id == caller.partner_id)
    elif caller.role is not Role.OPERATOR:
        raise Forbidden("only an operator or a partner's manager may list partners")
    rows = list((await session.execute(paging.newest_first(query, page, Partner.created_at, Partner.id))).scalars())
    return Page(
        items=[PartnerOut(id=p.id, name=p.name, licence_stock=p.licence_stock) for p in rows[: page.limit]],
        next_cursor=paging.next_cursor(rows, page, "created_at", "id"),
    )


@router.get("/partners/{partner_id}", response_model=PartnerOut)
async def get_partner(partner_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> PartnerOut:
    auth.see_partner(caller, partner_id)
    partner = await directory.get_partner(session, partner_id)
    return PartnerOut(id=partner.id, name=partner.name, licence_stock=partner.licence_stock)


@router.post("/partners/{partner_id}/licence-stock", status_code=status.HTTP_201_CREATED, response_model=StockOut)
async def credit_licence_stock(
    partner_id: uuid.UUID, body: StockCredit, session: SessionDep, caller: CurrentUser
) -> StockOut:
    """Record the partner's purchase of licences. Each purchase `reference` is credited once."""
    auth.see_partner(caller, partner_id)
    auth.require_operator(caller)
    async with session.begin():
        await directory.get_partner(session, partner_id)
        stock = await directory.credit_stock(
            session,
            partner_id=partner_id,
            quantity=body.quantity,
            reference=body.reference,
            actor=caller.actor,
            at=now(),
        )
    return StockOut(partner_id=partner_id, licence_stock=stock)


@router.get("/partners/{partner_id}/licence-stock", response_model=StockStatement)
async def licence_stock_statement(
    partner_id: uuid.UUID,
    session: SessionDep,
    caller: CurrentUser,
    page: paging.PageRequest = Depends(paging.page_request),
) -> StockStatement:
    """The partner's licence stock and its statement, newest first: each purchase credited (with its reference)
    and each order assigned from it (with its customer), and the stock each move left."""
    auth.see_partner(caller, partner_id)
    partner = await directory.get_partner(session, partner_id)
    query = paging.newest_first(stock.moves_of(partner_id), page, AuditEvent.at, AuditEvent.id)
    moves = await stock.statement(session, query)
    return StockStatement(
        partner_id=partner_id,
        licence_stock=partner.licence_stock,
        items=[StockMoveOut.model_validate(move, from_attributes=True) for move in moves[: page.limit]],
        next_cursor=paging.next_cursor(moves, page, "at", "id"),
    )


def _customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut.model_validate(customer, from_attributes=True)


@router.post("/partners/{partner_id}/customers", status_code=status.HTTP_201_CREATED, response_model=CustomerOut)
async def create_customer(
    partner_id: uuid.UUID,
    body: CustomerCreate,
    session: SessionDep,
    caller: CurrentUser,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> CustomerOut:
    """A new customer. A trial customer gets its trial licences at once (`trial_licences`, or the default), for
    its `trial_term` (or LICENSING_TRIAL_TERM), audited as a trial block of its own."""
    auth.manage_partner(caller, partner_id)
    if body.account_type == "premium" and (body.trial_licences is not None or body.trial_term is not None):
        raise InvalidInput("trial_licences, trial_term: only a trial customer gets a trial")
    trial_licences = body.trial_licences or settings.trial_licences
    started = now()
    try:
        trial_ends = term_end(started, body.trial_term or settings.trial_term)
    except (ValueError, OverflowError):  # a year past 9999
        raise InvalidInput(
            f"trial_term: {body.trial_term} is far longer than a licence term; a trial is shorter"
        ) from None
    licence_ends = term_end(started, settings.licence_term)
    if body.trial_term is not None and trial_ends > licence_ends:
        raise InvalidInput(
            f"trial_term: {body.trial_term} is longer than a licence term ({settings.licence_term}); a trial is shorter"
        )
    # A default trial term longer than the licence term (a demo's short licence term beside the 14-day default) is
    # cut to the licence term: a trial never outlasts what a licence bought would give.
    trial_ends = min(trial_ends, licence_ends)
    async with session.begin():
        customer = await directory.create_customer(
            session,
            partner_id=partner_id,
            name=body.name,
            account_type=body.account_type,
            trial_licences=trial_licences if body.account_type == "trial" else None,
            actor=caller.actor,
            at=started,
        )
        trial = None
        if body.account_type == "trial":
            trial = await blocks.create_trial_block(
                session,
                customer=customer,
                quantity=trial_licences,
                starts_at=started,
                expires_at=trial_ends,
                actor=caller.actor,
            )
    if trial is not None:
        try:
            await start_block_term(temporal, settings, customer, trial)
        except RPCError as problem:
            if problem.status not in TEMPORAL_AWAY:
                raise
            # The customer and its trial are saved: answering 503 would have a retry refused as a customer that
            # exists. The worker's repair starts the term (LICENSING_RECONCILE_EVERY); it ends on time all the same.
            log.warning("the trial term of customer %s is left to the worker's repair: %s", customer.id, problem)
    return _customer_out(customer)


@router.get("/partners/{partner_id}/customers", response_model=Page[CustomerSummary])
async def list_customers(
    partner_id: uuid.UUID,
    session: SessionDep,
    caller: CurrentUser,
    page: paging.PageRequest = Depends(paging.page_request),
    expiring_within: Annotated[
        str | None,
        Query(
            max_length=40,
            description="only customers with licences that run out within this ISO 8601 duration from now (P30D): "
            "the renewals due",
            examples=["P30D"],
        ),
    ] = None,
) -> Page[CustomerSummary]:
    """The multi-tenant view: every customer of the partner with its licence counts and its next renewal."""
    auth.see_partner(caller, partner_id)
    await directory.get_partner(session, partner_id)  # an operator asking for a partner that does not exist: 404
    query = select(Customer).where(Customer.partner_id == partner_id)
    at = now()
    if expiring_within is not None:
        query = query.where(blocks.running_until(Customer, now=at, until=_renewals_until(at, expiring_within)))
    rows = list((await session.execute(paging.newest_first(query, page, Customer.created_at, Customer.id))).scalars())
    shown = rows[: page.limit]
    counts = await directory.licence_counts(session, [c.id for c in shown], now=at)
    next_ends = await blocks.next_expiries(session, [c.id for c in shown], now=at)
    items = [
        CustomerSummary(
            **_customer_out(c).model_dump(),
            licences=LicenceCounts(total=sum(counts[c.id].values()), **counts[c.id]),
            next_expiry=_next_expiry(next_ends.get(c.id)),
        )
        for c in shown
    ]
    return Page(items=items, next_cursor=paging.next_cursor(rows, page, "created_at", "id"))


def _renewals_until(at: datetime, within: str) -> datetime:
    try:
        return add_duration(at, parse_duration(within))
    except InvalidDuration as problem:
        raise InvalidInput(f"expiring_within: {problem}") from None
    except (ValueError, OverflowError):  # a year past 9999
        raise InvalidInput(f"expiring_within: {within} reaches past the calendar; ask for a shorter span") from None


def _next_expiry(block: LicenceBlock | None) -> NextExpiry | None:
    if block is None:
        return None
    return NextExpiry(block_id=block.id, kind=block.kind, quantity=block.quantity, expires_at=block.expires_at)
