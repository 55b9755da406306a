"""Users: operators create anyone; a partner manager creates the managers of its own customers."""

from fastapi import APIRouter, status

from api import auth
from api.clock import now
from api.deps import CurrentUser, SessionDep
from api.errors import Forbidden
from api.schemas import UserCreate, UserCreated, UserOut
from db import directory
from db.models import User
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


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated)
async def create_user(body: UserCreate, session: SessionDep, caller: CurrentUser) -> UserCreated:
    """Create a user and show its token once. Partner managers may create their customers' managers only."""
    _check_scope(body)
    async with session.begin():
        if body.partner_id is not None:
            auth.see_partner(caller, body.partner_id)
            await directory.get_partner(session, body.partner_id)
        if body.customer_id is not None:
            auth.see_customer(caller, await directory.get_customer(session, body.customer_id))
        if caller.role is not Role.OPERATOR and body.role is not Role.CUSTOMER_MANAGER:
            raise Forbidden("partner managers may create customer managers only")
        if caller.role is Role.CUSTOMER_MANAGER:
            raise Forbidden("customer managers cannot create users; ask your partner")
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
