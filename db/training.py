"""A learner's training records: a completed course added (and audited), and the report that exports them all."""

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.models import Learner, TrainingRecord
from payloads.common import Actor


async def add_training_record(
    session: AsyncSession,
    *,
    learner: Learner,
    course: str,
    completed_at: datetime,
    score: int,
    actor: Actor,
    now: datetime,
) -> TrainingRecord:
    """A completed course on the learner's record, audited as a change to the learner."""
    record = TrainingRecord(
        id=uuid.uuid4(),
        learner_id=learner.id,
        customer_id=learner.customer_id,
        course=course,
        completed_at=completed_at,
        score=score,
        created_at=now,
    )
    session.add(record)
    await audit.record_for_customer(
        session,
        customer_id=learner.customer_id,
        actor=actor,
        action="learner.training_recorded",
        subject_type="learner",
        subject_id=learner.id,
        at=now,
        details={"training_record_id": str(record.id), "course": course, "score": score},
    )
    return record


async def training_report(
    session: AsyncSession, customer_id: uuid.UUID, learner_id: uuid.UUID | None = None
) -> list[tuple[Learner, TrainingRecord | None]]:
    """Every learner (or one) with each of its records; a learner without records appears once, with None."""
    query = (
        select(Learner, TrainingRecord)
        .outerjoin(TrainingRecord, TrainingRecord.learner_id == Learner.id)
        .where(Learner.customer_id == customer_id)
        .order_by(Learner.email, TrainingRecord.completed_at)
    )
    if learner_id is not None:
        query = query.where(Learner.id == learner_id)
    return [(learner, record) for learner, record in (await session.execute(query)).all()]
