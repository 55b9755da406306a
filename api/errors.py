"""Every refusal becomes `{"detail": "..."}` with one status per business error type, decided here only."""

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from db.migrate import NOT_MIGRATED, schema_missing
from licensing.temporal import namespace_command, namespace_missing
from rules.errors import (
    Conflict,
    InsufficientLicences,
    InsufficientStock,
    InvalidInput,
    LicensingError,
    NotFound,
    OrderNotRequested,
    TooLarge,
)

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "the database is unavailable right now; try again shortly"
# A deadlock (40P01) or a serialization failure (40001): PostgreSQL undid this request's transaction, whole, so
# that another change of the same rows could go on. Nothing of it was written; sending it again is safe.
UNDONE_FOR_ANOTHER = {"40P01", "40001"}
UNDONE = (
    "this request met another change of the same data at the same moment and was undone, nothing of it written; "
    "send it again"
)

STATUS_FOR_TYPE: dict[str, int] = {
    NotFound.type: 404,
    Conflict.type: 409,
    OrderNotRequested.type: 409,
    InsufficientStock.type: 409,
    InsufficientLicences.type: 409,
    InvalidInput.type: 422,
    TooLarge.type: 413,
}


class Forbidden(LicensingError):
    """The caller is known and sees the object, but its role may not do this."""

    type = "Forbidden"


class Unauthorized(LicensingError):
    type = "Unauthorized"


class ServiceUnavailable(LicensingError):
    type = "ServiceUnavailable"


STATUS_FOR_TYPE.update({Forbidden.type: 403, Unauthorized.type: 401, ServiceUnavailable.type: 503})


def _detail(status: int, detail: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def business_refusal(error: LicensingError) -> JSONResponse:
    return _detail(STATUS_FOR_TYPE.get(error.type, 400), error.message)


def update_refusal(error: WorkflowUpdateFailedError) -> JSONResponse:
    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in STATUS_FOR_TYPE:
        return _detail(STATUS_FOR_TYPE[cause.type], cause.message)
    log.error("workflow update failed unexpectedly", exc_info=error)
    return _detail(503, "the licence workflow could not complete the request; try again shortly")


# Pydantic's types of a body that is no object: text sent without Content-Type: application/json, or a JSON list.
NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type"}


def _readable(error: dict[str, object]) -> str:
    if error.get("type") == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"  # type: ignore[attr-defined]
    if tuple(error.get("loc", ())) == ("body",):  # type: ignore[arg-type]  # the body as a whole
        if error.get("type") == "missing":
            return "the request has no body: send a JSON object with Content-Type: application/json"
        if error.get("type") in NOT_AN_OBJECT:
            return "the body must be a JSON object, sent with Content-Type: application/json"
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    message = str(error.get("msg", "is invalid"))
    # Pydantic's wording made for people: our own checks' messages without its "Value error, " label, and the
    # allowed values of a field as they are sent (`'operator'`), not as Python names them (`<Role.OPERATOR: ...>`).
    message = _ENUM_MEMBER.sub(r"\1", message.removeprefix("Value error, "))
    return f"{location}: {message}" if location else message


_ENUM_MEMBER = re.compile(r"<\w+\.\w+: ('[^']*')>")


def install(app: FastAPI) -> None:
    @app.exception_handler(LicensingError)
    async def _licensing(_: Request, error: LicensingError) -> JSONResponse:
        return business_refusal(error)

    @app.exception_handler(WorkflowUpdateFailedError)
    async def _update(_: Request, error: WorkflowUpdateFailedError) -> JSONResponse:
        return update_refusal(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        detail = "; ".join(_readable(e) for e in error.errors())
        if request.url.path.startswith("/scim/"):  # a directory gets SCIM's error body
            return JSONResponse(
                {
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "400",
                    "scimType": "invalidValue",
                    "detail": detail,
                },
                status_code=400,
                media_type="application/scim+json",
            )
        return _detail(422, detail)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, error: IntegrityError) -> JSONResponse:
        log.info("refused a write that conflicts with existing data: %s", error.orig)
        return _detail(409, "this conflicts with data that already exists (it may have been created just now)")

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, error: DataError) -> JSONResponse:
        log.info("refused a value the database cannot store: %s", error.orig)
        return _detail(422, "a value is too long or holds characters that cannot be stored")

    @app.exception_handler(ProgrammingError)
    async def _not_migrated(_: Request, error: ProgrammingError) -> JSONResponse:
        if not schema_missing(error):
            raise error  # a fault of this code: the server's 500, with its traceback in the log
        log.error("the database is not migrated to this version: %s", error.orig)
        return _detail(503, NOT_MIGRATED)

    @app.exception_handler(OperationalError)
    async def _database_down(_: Request, error: OperationalError) -> JSONResponse:
        if schema_missing(error):  # SQLite's word for a missing table: no retry helps, the migrations do
            log.error("the database is not migrated to this version: %s", error.orig)
            return _detail(503, NOT_MIGRATED)
        if getattr(error.orig, "sqlstate", None) in UNDONE_FOR_ANOTHER:
            log.warning("PostgreSQL undid a transaction to let another go on: %s", error.orig)
            answer = _detail(503, UNDONE)
            answer.headers["Retry-After"] = "1"
            return answer
        log.error("database unavailable", exc_info=error)
        return _detail(503, DATABASE_UNAVAILABLE)

    @app.exception_handler(WorkflowUpdateRPCTimeoutOrCancelledError)
    async def _update_unanswered(_: Request, error: WorkflowUpdateRPCTimeoutOrCancelledError) -> JSONResponse:
        log.warning("a workflow update was not answered in time", exc_info=error)
        return _detail(503, "the licence workflow has not answered yet; read the object again in a moment")

    @app.exception_handler(RPCError)
    async def _temporal_down(request: Request, error: RPCError) -> JSONResponse:
        log.error("Temporal call failed", exc_info=error)
        if error.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in error.message:
            request.app.state.search_attributes_found = False  # gone since /readyz found them: it asks again
            # Not the caller's doing, nor passing: the service is not set up. Say what an operator must do.
            return _detail(
                503,
                "the workflow service is not set up for this service: its namespace lacks a search attribute "
                f"({error.message}); an operator starts the worker, which registers PartnerId, CustomerId and "
                "OrderStatus, or registers them by hand",
            )
        if namespace_missing(error):
            # A misspelt LICENSING_TEMPORAL_NAMESPACE, or one not created yet: no retry helps; an operator must act.
            return _detail(
                503,
                "the workflow service is not set up for this service: its namespace "
                f"{request.app.state.settings.temporal_namespace} does not exist; an operator creates it "
                f"({namespace_command(request.app.state.settings.temporal_namespace)}) or sets "
                "LICENSING_TEMPORAL_NAMESPACE to one that exists",
            )
        return _detail(503, "the workflow service is unavailable right now; try again shortly")
