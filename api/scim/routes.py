"""/scim/v2: the customer's directory provisions learners. The token names the customer; another customer's
users are never found."""

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.clock import now
from api.deps import ReadSessionsDep, SessionsDep
from api.scim import discovery, filters
from api.scim.errors import ScimError, scim_response
from api.scim.users import USER_SCHEMA, apply_patch, from_resource, project, to_resource
from db import learners, scim
from db.models import Customer, Learner
from payloads.common import Actor, Role
from rules.emails import canonical
from rules.errors import Conflict, NotFound


class ScimProblem(BaseModel):
    """A SCIM error (RFC 7644 3.12)."""

    schemas: list[str]
    status: str
    detail: str
    scimType: str | None = None


router = APIRouter(
    prefix="/scim/v2",
    tags=["SCIM (AD Sync)"],
    responses={
        status: {"model": ScimProblem, "content": {"application/scim+json": {}}}
        for status in (400, 401, 404, 405, 409, 413, 422)
    },
)


async def _customer(request: Request, readers: ReadSessionsDep) -> Customer:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ScimError(401, "send 'Authorization: Bearer TOKEN' with the customer's SCIM token")
    async with readers() as session:
        customer = await scim.customer_for_token(session, token.strip())
    if customer is None:
        raise ScimError(401, "this SCIM token is not valid or was revoked")
    return customer


Directory = Annotated[Customer, Depends(_customer)]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/scim/v2"


def _actor(customer: Customer) -> Actor:
    return Actor(user_id=None, role=Role.DIRECTORY, on_behalf_of_customer_id=customer.id)


async def _body(request: Request) -> Any:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise ScimError(400, "the body is not valid JSON", "invalidSyntax") from None
    if _deeper_than(body, MAX_DEPTH):  # read recursively below: a deep body would exhaust the stack there
        raise ScimError(400, f"the body is nested more than {MAX_DEPTH} levels deep", "invalidSyntax")
    try:  # JSON may escape half a UTF-16 pair (\\ud800), which no stored text can hold
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ScimError(
            400, "the body holds a lone surrogate (\\ud800 to \\udfff) in its text", "invalidValue"
        ) from None
    return body


# Far deeper than any User, PatchOp or SearchRequest (a PatchOp's email is 5 levels down).
MAX_DEPTH = 32


def _deeper_than(body: Any, limit: int) -> bool:
    """Whether the JSON value nests objects and arrays more than `limit` levels deep (looked at without recursion)."""
    level: list[Any] = [body]
    for _ in range(limit):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value if isinstance(value, list) else ())
        ]
        if not level:
            return False
    return any(isinstance(value, dict | list) for value in level)


@asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    """Business refusals in SCIM's words."""
    try:
        yield
    except Conflict as refusal:
        raise ScimError(409, refusal.message, "uniqueness") from None
    except IntegrityError:
        raise ScimError(409, "a user with this userName or email already exists", "uniqueness") from None
    except DataError:
        raise ScimError(400, "a value is too long or holds characters that cannot be stored", "invalidValue") from None
    except NotFound as refusal:
        raise ScimError(404, refusal.message) from None


async def _learner(session: AsyncSession, customer: Customer, user_id: str, *, for_update: bool = False) -> Learner:
    try:
        learner_id = uuid.UUID(user_id)
    except ValueError:
        raise ScimError(404, f"user {user_id} not found") from None
    async with _refusals():
        return await learners.get_learner(session, customer.id, learner_id, for_update=for_update)


@router.get("/ServiceProviderConfig")
async def service_provider_config(request: Request) -> JSONResponse:
    return scim_response(discovery.service_provider_config(_base(request)))


@router.get("/ResourceTypes")
async def resource_types(request: Request) -> JSONResponse:
    types = [discovery.user_resource_type(_base(request))]
    return scim_response(discovery.list_response(types, total=1, start_index=1))


@router.get("/ResourceTypes/{name}")
async def resource_type(request: Request, name: str) -> JSONResponse:
    if name != "User":
        raise ScimError(404, f"resource type {name} not found")
    return scim_response(discovery.user_resource_type(_base(request)))


@router.get("/Schemas")
async def schemas(request: Request) -> JSONResponse:
    return scim_response(discovery.list_response([discovery.user_schema(_base(request))], total=1, start_index=1))


@router.get("/Schemas/{schema_id}")
async def schema(request: Request, schema_id: str) -> JSONResponse:
    if schema_id != USER_SCHEMA:
        raise ScimError(404, f"schema {schema_id} not found")
    return scim_response(discovery.user_schema(_base(request)))


def _as_stored(value: str) -> str:
    """A filter's value as an address is stored (rules.emails.canonical), in lower case if it is none."""
    return canonical(value).lower()


def _filtered(customer: Customer, clauses: list[filters.Equals]) -> Select[Learner]:
    query = select(Learner).where(Learner.customer_id == customer.id)
    for clause in clauses:
        value = clause.value
        if "\x00" in value:  # no stored text holds NUL (PostgreSQL refuses even to compare with one)
            query = query.where(false())
        elif clause.field == "user_name":
            query = query.where(
                or_(
                    # A userName is kept as the directory sent it; an address, in the form learners keep.
                    func.lower(Learner.user_name).in_({value.lower(), _as_stored(value)}),
                    (Learner.user_name.is_(None)) & (Learner.email == _as_stored(value)),
                )
            )
        elif clause.field == "email":
            query = query.where(Learner.email == _as_stored(value))
        elif clause.field == "external_id":
            query = query.where(Learner.external_id == value)
        else:
            try:
                query = query.where(Learner.id == uuid.UUID(value))
            except ValueError:
                query = query.where(false())  # no learner has a malformed id
    return query


Projection = Annotated[str | None, Query(max_length=1000)]


async def _search(
    request: Request,
    readers: async_sessionmaker[AsyncSession],
    customer: Customer,
    *,
    filter_text: str | None,
    start_index: int,
    count: int,
    attributes: str | None,
    excluded: str | None,
) -> JSONResponse:
    start_index, count = min(max(start_index, 1), 2**31 - 1), min(max(count, 0), discovery.MAX_RESULTS)
    query = _filtered(customer, filters.parse(filter_text))
    async with readers() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        ordered = query.order_by(Learner.created_at, Learner.id).offset(start_index - 1).limit(count)
        page = (await session.execute(ordered)).scalars()
        resources = [
            project(to_resource(learner, _base(request)), attributes=attributes, excluded=excluded) for learner in page
        ]
    return scim_response(discovery.list_response(resources, total=total, start_index=start_index))


@router.get("/Users")
async def list_users(
    request: Request,
    customer: Directory,
    readers: ReadSessionsDep,
    filter: Annotated[str | None, Query(max_length=1000)] = None,
    start_index: Annotated[int, Query(alias="startIndex")] = 1,
    count: Annotated[int, Query()] = 100,
    attributes: Projection = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes", max_length=1000)] = None,
) -> JSONResponse:
    """Users, filtered (`userName eq "..."` and the like) and paged with startIndex (1-based) and count."""
    return await _search(
        request,
        readers,
        customer,
        filter_text=filter,
        start_index=start_index,
        count=count,
        attributes=attributes,
        excluded=excluded_attributes,
    )


@router.post("/.search")
@router.post("/Users/.search")
async def search_users(request: Request, customer: Directory, readers: ReadSessionsDep) -> JSONResponse:
    """The same search as GET /Users, with its parameters in a SearchRequest body."""
    body = await _body(request)
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a SearchRequest", "invalidSyntax")

    def joined(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return ",".join(value)
        raise ScimError(400, "attributes and excludedAttributes must be lists of names", "invalidValue")

    if not isinstance(body.get("filter"), str | None):
        raise ScimError(400, "filter must be a string", "invalidFilter")

    try:
        start_index, count = int(body.get("startIndex", 1)), int(body.get("count", 100))
    except (TypeError, ValueError, OverflowError):
        raise ScimError(400, "startIndex and count must be integers", "invalidValue") from None
    return await _search(
        request,
        readers,
        customer,
        filter_text=body.get("filter"),
        start_index=start_index,
        count=count,
        attributes=joined(body.get("attributes")),
        excluded=joined(body.get("excludedAttributes")),
    )


@router.get("/Users/{user_id}")
async def get_user(
    request: Request,
    user_id: str,
    customer: Directory,
    readers: ReadSessionsDep,
    attributes: Projection = None,
    excluded_attributes: Annotated[str | None, Query(alias="excludedAttributes", max_length=1000)] = None,
) -> JSONResponse:
    async with readers() as session:
        resource = to_resource(await _learner(session, customer, user_id), _base(request))
    return scim_response(project(resource, attributes=attributes, excluded=excluded_attributes))


@router.post("/Users", status_code=201)
async def create_user(request: Request, customer: Directory, sessions: SessionsDep) -> JSONResponse:
    """A new person in the directory becomes a learner and takes a free licence automatically."""
    user = from_resource(await _body(request))
    async with _refusals(), sessions.begin() as session:
        learner = await scim.provision(session, customer_id=customer.id, user=user, actor=_actor(customer), now=now())
    resource = to_resource(learner, _base(request))
    return scim_response(resource, 201, headers={"Location": resource["meta"]["location"]})


@router.put("/Users/{user_id}")
async def replace_user(request: Request, user_id: str, customer: Directory, sessions: SessionsDep) -> JSONResponse:
    user = from_resource(await _body(request))
    async with _refusals(), sessions.begin() as session:
        learner = await _learner(session, customer, user_id, for_update=True)
        await scim.change(session, learner=learner, user=user, actor=_actor(customer), now=now())
    return scim_response(to_resource(learner, _base(request)))


@router.patch("/Users/{user_id}")
async def patch_user(request: Request, user_id: str, customer: Directory, sessions: SessionsDep) -> JSONResponse:
    """Entra ID's PATCH: `active` false frees the licence and keeps the learner; true brings it back unlicensed."""
    body = await _body(request)
    async with _refusals(), sessions.begin() as session:
        learner = await _learner(session, customer, user_id, for_update=True)
        user = apply_patch(to_resource(learner, _base(request)), body)
        await scim.change(session, learner=learner, user=user, actor=_actor(customer), now=now())
    return scim_response(to_resource(learner, _base(request)))


@router.delete("/Users/{user_id}", status_code=204)
async def delete_user(user_id: str, customer: Directory, sessions: SessionsDep) -> Response:
    """Removed from the directory: deleted like the API's delete (the licence is freed)."""
    async with _refusals(), sessions.begin() as session:
        learner = await _learner(session, customer, user_id)
        await learners.delete_learner(
            session, customer_id=customer.id, learner_id=learner.id, actor=_actor(customer), now=now()
        )
    return Response(status_code=204)


_ENDPOINTS = {"serviceproviderconfig", "resourcetypes", "schemas", "users"}


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown(request: Request, path: str) -> JSONResponse:
    if path.split("/")[0].lower() in _ENDPOINTS:
        raise ScimError(405, f"{request.method} is not allowed on /scim/v2/{path}")
    raise ScimError(
        404,
        f"/scim/v2/{path} is not a SCIM endpoint of this server (Users, Schemas, ResourceTypes, ServiceProviderConfig)",
    )
