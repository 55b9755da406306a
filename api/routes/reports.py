"""Training reports: what a manager exports before deleting a learner."""

import uuid

from fastapi import APIRouter, Response

from api import auth
from api.csv_export import to_csv
from api.deps import CurrentUser, SessionDep
from db import directory, learners, training
from db.models import Learner, TrainingRecord

router = APIRouter(tags=["reports"])

HEADER = ("learner_email", "learner_name", "licence_status", "licence_expires_at", "course", "completed_at", "score")


def _row(learner: Learner, record: TrainingRecord | None) -> tuple[object, ...]:
    expires = learner.licence_expires_at.isoformat() if learner.licence_expires_at else ""
    if record is None:
        return (learner.email, learner.name, learner.licence_status, expires, "", "", "")
    return (
        learner.email,
        learner.name,
        learner.licence_status,
        expires,
        record.course,
        record.completed_at.isoformat(),
        record.score,
    )


def _csv(body: str, filename: str) -> Response:
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/customers/{customer_id}/reports/training.csv", response_class=Response)
async def training_report(customer_id: uuid.UUID, session: SessionDep, caller: CurrentUser) -> Response:
    """Every learner's training records as CSV (a learner without records has one row with empty course)."""
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    rows = await training.training_report(session, customer_id)
    return _csv(to_csv(HEADER, (_row(learner, record) for learner, record in rows)), "training.csv")


@router.get("/customers/{customer_id}/learners/{learner_id}/reports/training.csv", response_class=Response)
async def learner_training_report(
    customer_id: uuid.UUID, learner_id: uuid.UUID, session: SessionDep, caller: CurrentUser
) -> Response:
    """One learner's training records as CSV."""
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    await learners.get_learner(session, customer_id, learner_id)
    rows = await training.training_report(session, customer_id, learner_id)
    return _csv(to_csv(HEADER, (_row(learner, record) for learner, record in rows)), f"training-{learner_id}.csv")
