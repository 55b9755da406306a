"""Users: operators create anyone; a partner manager creates the managers of its own customers. The same people
remove a user's access (someone who left) or give a user a new token (one lost or leaked); anyone may replace
their own token."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import ColumnElement, select, true

from api import auth, paging
from api.clock import now
from api.deps import CurrentUser, SessionDep
from api.errors import Forbidden
from api.schemas import Page, UserCreate, UserCreated, UserOut
from db import directory
from db.models import Customer, User
from payloads.common import Role
from rules.errors import InvalidInput

router = APIRouter(tags=["users"])


def _check_scope(body: UserCreate) -> None:
    """Each role belongs to exactly one kind of tenant."""
    wants = {
        Role.OPERATOR: (False, False),
        Role.PARTNER_MANAGER: (True, False),
        Role.CUSTOMER_MANAGER: (False, True),
    }[body.role]
    if (body.partner_id is not None, body.customer_id is not None) != wants:
        needs = {
            Role.OPERATOR: "neither partner_id nor customer_id",
            Role.PARTNER_MANAGER: "partner_id and no customer_id",
            Role.CUSTOMER_MANAGER: "customer_id and no partner_id",
        }[body.role]
        raise InvalidInput(f"a {body.role.value} needs {needs}")


CUSTOMER_MANAGERS_CREATE_NOBODY = "customer managers cannot create users; ask your partner"


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated)
async def create_user(body: UserCreate, session: SessionDep, caller: CurrentUser) -> UserCreated:
    """Create a user and show its token once. Partner managers may create their customers' managers only."""
    _check_scope(body)
    own_side = body.partner_id in (None, caller.partner_id) and body.customer_id in (None, caller.customer_id)
    if caller.role is Role.CUSTOMER_MANAGER and own_side:  # say why, whatever the role asked for
        raise Forbidden(CUSTOMER_MANAGERS_CREATE_NOBODY)
    async with session.begin():
        if body.partner_id is not None:
            auth.see_partner(caller, body.partner_id)
            await directory.get_partner(session, body.partner_id)
        if body.customer_id is not None:
            auth.see_customer(caller, await directory.get_customer(session, body.customer_id))
        # After the checks above: another tenant's customer or partner is not found (404), whoever asks.
        if caller.role is Role.CUSTOMER_MANAGER:
            raise Forbidden(CUSTOMER_MANAGERS_CREATE_NOBODY)
        if caller.role is not Role.OPERATOR and body.role is not Role.CUSTOMER_MANAGER:
            raise Forbidden("partner managers may create customer managers only")
        user, token = await directory.create_user(
            session,
            email=str(body.email),
            name=body.name,
            role=body.role,
            partner_id=body.partner_id,
            customer_id=body.customer_id,
            actor=caller.actor,
            at=now(),
        )
    return UserCreated(**_user_out(user).model_dump(), token=token)


def _user_out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


@router.get("/users/me", response_model=UserOut)
async def who_am_i(session: SessionDep, caller: CurrentUser) -> UserOut:
    user = await session.get_one(User, caller.user_id)
    return _user_out(user)


@router.get("/users", response_model=Page[UserOut])
async def list_users(
    session: SessionDep,
    caller: CurrentUser,
    partner_id: Annotated[uuid.UUID | None, Query(description="only this partner's managers")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(description="only this customer's managers")] = None,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[UserOut]:
    """The users the caller can see, newest first, those whose access was removed included: an operator, everyone;
    a partner's manager, the partner's managers and its customers' managers; a customer's manager, its colleagues."""
    query = select(User).where(_visible_to(caller))
    if partner_id is not None:
        auth.see_partner(caller, partner_id)
        await directory.get_partner(session, partner_id)
        query = query.where(User.partner_id == partner_id)
    if customer_id is not None:
        auth.see_customer(caller, await directory.get_customer(session, customer_id))
        query = query.where(User.customer_id == customer_id)
    rows = list((await session.execute(paging.newest_first(query, page, User.created_at, User.id))).scalars())
    return Page(
        items=[_user_out(u) for u in rows[: page.limit]], next_cursor=paging.next_cursor(rows, page, "created_at", "id")
    )


def _visible_to(caller: auth.Principal) -> ColumnElement[bool]:
    """As `auth.see_user`, for a query."""
    if caller.role is Role.PARTNER_MANAGER:
        customers = select(Customer.id).where(Customer.partner_id == caller.partner_id)
        return (User.partner_id == caller.partner_id) | User.customer_id.in_(customers)
    if caller.role is Role.CUSTOMER_MANAGER:
        return User.customer_id == caller.customer_id
    return true()


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_access(user_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> Response:
    """Remove a user's access (someone who left): its token stops working at once and it gets no more emails or
    notifications. The user stays, as the actor of what it did; a new token (`POST /users/{id}/token`) restores
    it. Removing it again changes nothing. Nobody removes their own access."""
    async with session.begin():
        user, works_for = await directory.get_user(session, user_id)
        auth.manage_user(caller, user, works_for)
        if user.id == caller.user_id:
            raise Forbidden("you cannot remove your own access; ask an operator")
        await directory.remove_access(session, user, actor=caller.actor, at=now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/users/{user_id}/token", status_code=status.HTTP_201_CREATED, response_model=UserCreated)
async def issue_token(user_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> UserCreated:
    """A new token for the user, shown once; the old one stops working at once (a token lost or leaked). It
    restores a user whose access was removed."""
    async with session.begin():
        user, works_for = await directory.get_user(session, user_id)
        auth.manage_user(caller, user, works_for)
        token = await directory.issue_token(session, user, actor=caller.actor, at=now())
    return UserCreated(**_user_out(user).model_dump(), token=token)
