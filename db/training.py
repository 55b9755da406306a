"""A learner's training records: a completed course added (and audited), and the report that exports them all."""

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from db import audit
from db.models import Learner, TrainingRecord
from payloads.common import Actor

# A report row: the learner (email, name, licence status, licence end), one record (course, completed, score), and
# who the learner is when it has no email (a directory user without a mailbox): its userName and its id.
ReportRow = Row[str | None, str, str, datetime | None, str | None, datetime | None, int | None, str | None, uuid.UUID]


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


REPORT_BATCH = 1000  # rows read from the database, and written as CSV, at a time


async def training_report(
    session: AsyncSession, customer_id: uuid.UUID, learner_id: uuid.UUID | None = None
) -> AsyncIterator[Sequence[ReportRow]]:
    """Every learner (or one) with each of its records, a batch of rows at a time as the database sends them (a
    customer's whole history is never held at once); a learner without records appears once, with no course."""
    query = (
        select(
            Learner.email,
            Learner.name,
            Learner.licence_status,
            Learner.licence_expires_at,
            TrainingRecord.course,
            TrainingRecord.completed_at,
            TrainingRecord.score,
            Learner.user_name,
            Learner.id,
        )
        .outerjoin(TrainingRecord, TrainingRecord.learner_id == Learner.id)
        .where(Learner.customer_id == customer_id)
        # By email, learners without one last on every database, each learner's records together and in order.
        .order_by(
            Learner.email.asc().nulls_last(),
            Learner.user_name,
            Learner.id,
            TrainingRecord.completed_at,
            TrainingRecord.id,
        )
        .execution_options(yield_per=REPORT_BATCH)
    )
    if learner_id is not None:
        query = query.where(Learner.id == learner_id)
    result = await session.stream(query)
    async for rows in result.partitions():
        yield cast(Sequence[ReportRow], rows)  # the outer join's record columns are None for a learner without any
