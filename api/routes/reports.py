"""Training reports: what a manager exports before deleting a learner."""

import uuid
from collections.abc import AsyncIterator, Sequence

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api import auth
from api.csv_export import csv_chunks
from api.deps import CurrentUser, SessionDep
from db import directory, learners, training
from db.training import ReportRow

router = APIRouter(tags=["reports"])

HEADER = (
    "learner_email",
    "learner_name",
    "licence_status",
    "licence_expires_at",
    "course",
    "completed_at",
    "score",
    "learner_user_name",  # a directory user's userName when it is not its email (one without a mailbox has no email)
    "learner_id",
)


def _row(row: ReportRow) -> tuple[object, ...]:
    email, name, licence_status, expires_at, course, completed_at, score, user_name, learner_id = row
    expires = expires_at.isoformat() if expires_at else ""
    who = (user_name or "", str(learner_id))
    if completed_at is None:  # a learner without records
        return (email, name, licence_status, expires, "", "", "", *who)
    return (email, name, licence_status, expires, course, completed_at.isoformat(), score, *who)


async def _rows(batches: AsyncIterator[Sequence[ReportRow]]) -> AsyncIterator[list[tuple[object, ...]]]:
    async for batch in batches:
        yield [_row(row) for row in batch]


def _csv(batches: AsyncIterator[Sequence[ReportRow]], filename: str) -> StreamingResponse:
    """The report sent as it is read: a customer with many learners is never held in memory whole."""
    return StreamingResponse(
        csv_chunks(HEADER, _rows(batches)),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/customers/{customer_id}/reports/training.csv", response_class=StreamingResponse)
async def training_report(customer_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> StreamingResponse:
    """Every learner's training records as CSV (a learner without records has one row with empty course)."""
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    return _csv(training.training_report(session, customer_id), "training.csv")


@router.get("/customers/{customer_id}/learners/{learner_id}/reports/training.csv", response_class=StreamingResponse)
async def learner_training_report(
    customer_id: uuid.UUID, learner_id: uuid.UUID, session: SessionDep, caller: CurrentUser
) -> StreamingResponse:
    """One learner's training records as CSV."""
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    await learners.get_learner(session, customer_id, learner_id)
    return _csv(training.training_report(session, customer_id, learner_id), f"training-{learner_id}.csv")
