"""The customer's directory tokens for AD Sync (SCIM). Shown once, stored hashed, revocable."""

import uuid

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select

from api import auth, paging
from api.clock import now
from api.deps import CurrentUser, SessionDep
from api.schemas import Page, ScimTokenCreated, ScimTokenOut
from db import directory, scim
from db.models import ScimToken

router = APIRouter(tags=["AD Sync"])


@router.post(
    "/customers/{customer_id}/scim-tokens", status_code=status.HTTP_201_CREATED, response_model=ScimTokenCreated
)
async def create_scim_token(
    customer_id: uuid.UUID, request: Request, session: SessionDep, caller: CurrentUser
) -> ScimTokenCreated:
    """A token for the customer's directory (Entra ID provisioning: Tenant URL and Secret Token)."""
    async with session.begin():
        actor = auth.act_for_customer(caller, await directory.get_customer(session, customer_id))
        row, token = await scim.create_token(session, customer_id=customer_id, actor=actor, at=now())
    return ScimTokenCreated(
        id=row.id,
        created_at=row.created_at,
        revoked_at=None,
        token=token,
        scim_url=str(request.base_url).rstrip("/") + "/scim/v2",
    )


@router.get("/customers/{customer_id}/scim-tokens", response_model=Page[ScimTokenOut])
async def list_scim_tokens(
    customer_id: uuid.UUID,
    session: SessionDep,
    caller: CurrentUser,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[ScimTokenOut]:
    """The customer's directory tokens, newest first, revoked ones included (their `revoked_at` set)."""
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    query = select(ScimToken).where(ScimToken.customer_id == customer_id)
    rows = list((await session.execute(paging.newest_first(query, page, ScimToken.created_at, ScimToken.id))).scalars())
    return Page[ScimTokenOut](
        items=[ScimTokenOut.model_validate(row, from_attributes=True) for row in rows[: page.limit]],
        next_cursor=paging.next_cursor(rows, page, "created_at", "id"),
    )


@router.delete("/customers/{customer_id}/scim-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_scim_token(
    customer_id: uuid.UUID, token_id: uuid.UUID, session: SessionDep, caller: CurrentUser
) -> Response:
    """Revoke a token: the directory's next call with it is refused."""
    async with session.begin():
        actor = auth.act_for_customer(caller, await directory.get_customer(session, customer_id))
        await scim.revoke_token(session, customer_id=customer_id, token_id=token_id, actor=actor, at=now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)
