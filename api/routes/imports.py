"""CSV Import (Users > Add Users > CSV Import): the upload is stored and a workflow imports it in batches."""

import contextlib
import hashlib
import uuid

from fastapi import APIRouter, Request, UploadFile, status
from temporalio.exceptions import WorkflowAlreadyStartedError

from api import auth, idempotency
from api.clock import now
from api.deps import CurrentUser, SessionDep, SessionsDep, SettingsDep, TemporalDep
from api.schemas import ImportOut, ImportRowError
from db import directory, imports
from db.models import LearnerImport
from licensing.imports import start_import
from rules.errors import InvalidInput, TooLarge
from rules.learner_csv import read_rows
from rules.wording import size

router = APIRouter(tags=["learner imports"])
MAX_ERRORS_SHOWN = 1000


async def _out(session: SessionDep, upload: LearnerImport) -> ImportOut:
    errors = await imports.import_errors(session, upload.id, limit=MAX_ERRORS_SHOWN)
    return ImportOut(
        id=upload.id,
        status=upload.status,
        filename=upload.filename,
        total_rows=upload.total_rows,
        processed_rows=upload.processed_rows,
        created=upload.created,
        licensed=upload.licensed,
        unlicensed=upload.unlicensed,
        failed=upload.failed,
        created_at=upload.created_at,
        finished_at=upload.finished_at,
        errors=[ImportRowError(row=e.row, message=e.message) for e in errors],
    )


def _size(file: UploadFile) -> int:
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return size


_KEYED_IMPORTS = uuid.UUID("5b3f8e61-0c2d-4a97-8f14-d6a2c9e07b35")


def _upload_id(key: str | None, *, requester: uuid.UUID, customer_id: uuid.UUID, file: UploadFile) -> uuid.UUID:
    """With an Idempotency-Key, the import's id follows from the key, the requester, the customer and the file,
    so that a retry of an attempt answered 503 (its upload saved, its workflow not started) finds that import
    instead of importing the file a second time; without a key, a fresh id."""
    if key is None:
        return uuid.uuid4()
    digest = hashlib.sha256()
    while chunk := file.file.read(1 << 20):
        digest.update(chunk)
    file.file.seek(0)
    named = "\n".join((str(requester), str(customer_id), file.filename or "", digest.hexdigest(), key))
    return uuid.uuid5(_KEYED_IMPORTS, named)


@router.post("/customers/{customer_id}/learner-imports", status_code=status.HTTP_202_ACCEPTED, response_model=ImportOut)
async def import_learners(
    customer_id: uuid.UUID,
    file: UploadFile,
    request: Request,
    sessions: SessionsDep,
    caller: CurrentUser,
    temporal: TemporalDep,
    settings: SettingsDep,
) -> ImportOut:
    """Upload a CSV with `email` and `name` columns (as Excel saves it). New learners take free licences
    automatically; the rest are added unlicensed. Bad rows are reported by row number and do not stop the rest.
    Follow the progress with GET .../learner-imports/{import_id}."""
    async with sessions() as session:
        customer = await directory.get_customer(session, customer_id)
    actor = auth.act_for_customer(caller, customer)
    if _size(file) > settings.import_max_bytes:
        raise TooLarge(f"the file is larger than {size(settings.import_max_bytes)}; split it into smaller files")
    upload_id = _upload_id(idempotency.keyed_use(request), requester=caller.user_id, customer_id=customer_id, file=file)
    async with sessions.begin() as session:
        upload = await session.get(LearnerImport, upload_id)
        if upload is None:
            upload = await imports.store_upload(
                session,
                customer_id=customer_id,
                filename=file.filename or "learners.csv",
                rows=read_rows(file.file, max_rows=settings.import_max_rows),
                actor=actor,
                now=now(),
                upload_id=upload_id,
            )
            if upload.total_rows == 0:
                raise InvalidInput("the file has a header but no rows of learners")
    with contextlib.suppress(WorkflowAlreadyStartedError):  # a keyed retry whose import is already under way
        await start_import(temporal, settings, customer, upload, actor)
    async with sessions() as session:
        return await _out(session, await imports.get_import(session, customer_id, upload.id))


@router.get("/customers/{customer_id}/learner-imports/{import_id}", response_model=ImportOut)
async def import_progress(
    customer_id: uuid.UUID, import_id: uuid.UUID, session: SessionDep, caller: CurrentUser
) -> ImportOut:
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    return await _out(session, await imports.get_import(session, customer_id, import_id))
