"""CSV imports of learners: the upload's rows are stored, then processed batch by batch. A batch is one
transaction that also moves the import's progress marker, so a batch retried after a crash resumes exactly
where the last committed one stopped and creates nobody twice."""

import uuid
from collections.abc import Iterable
from datetime import datetime
from itertools import islice
from typing import cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import audit
from db.directory import lock_customer
from db.learners import NewLearner, create_learners, known_as
from db.models import Learner, LearnerImport, LearnerImportError, LearnerImportRow
from payloads.common import Actor
from payloads.imports import ImportBatch, ImportProgress
from rules.emails import canonical, email_problem
from rules.errors import NotFound
from rules.learner_csv import CsvRow
from rules.licences import LearnerSource

_INSERT_CHUNK = 1000


async def store_upload(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    filename: str,
    rows: Iterable[CsvRow],
    actor: Actor,
    now: datetime,
    upload_id: uuid.UUID | None = None,
) -> LearnerImport:
    """Save the upload's rows (emails in the form learners keep them: rules.emails.canonical) and the import,
    `running`."""
    assert actor.user_id is not None
    upload = LearnerImport(
        id=upload_id or uuid.uuid4(),
        customer_id=customer_id,
        filename=filename.replace("\x00", "")[:300],  # a client's name for the file: kept as far as text can be
        status="running",
        total_rows=0,
        processed_rows=0,
        created=0,
        licensed=0,
        unlicensed=0,
        failed=0,
        created_by_id=actor.user_id,
        created_at=now,
    )
    session.add(upload)
    await session.flush()
    rows = iter(rows)
    while chunk := list(islice(rows, _INSERT_CHUNK)):
        await session.execute(
            insert(cast(Table, LearnerImportRow.__table__)),
            [
                {"import_id": upload.id, "row": r.row, "email": canonical(r.email)[:400], "name": r.name[:400]}
                for r in chunk
            ],
        )
        upload.total_rows += len(chunk)
    await audit.record_for_customer(
        session,
        customer_id=customer_id,
        actor=actor,
        action="learner_import.started",
        subject_type="learner_import",
        subject_id=upload.id,
        at=now,
        details={"filename": upload.filename, "rows": upload.total_rows},
    )
    return upload


def progress_of(upload: LearnerImport) -> ImportProgress:
    return ImportProgress(
        import_id=upload.id,
        total_rows=upload.total_rows,
        processed_rows=upload.processed_rows,
        created=upload.created,
        licensed=upload.licensed,
        unlicensed=upload.unlicensed,
        failed=upload.failed,
        done=upload.status == "finished",
    )


async def _first_rows(session: AsyncSession, import_id: uuid.UUID, emails: set[str]) -> dict[str, int]:
    """For each email, the first row of the file that has it (to report later rows as duplicates)."""
    found = await session.execute(
        select(LearnerImportRow.email, func.min(LearnerImportRow.row))
        .where(LearnerImportRow.import_id == import_id, LearnerImportRow.email.in_(emails))
        .group_by(LearnerImportRow.email)
    )
    return {email: row for email, row in found.all()}


async def _existing(session: AsyncSession, customer_id: uuid.UUID, emails: set[str]) -> set[str]:
    found = await session.execute(
        select(Learner.email, func.lower(Learner.user_name)).where(Learner.customer_id == customer_id, known_as(emails))
    )
    return {name for names in found for name in names if name in emails}


async def process_batch(sessions: async_sessionmaker[AsyncSession], batch: ImportBatch) -> ImportProgress:
    async with sessions.begin() as session:
        upload = await session.get(LearnerImport, batch.import_id, with_for_update=True)
        if upload is None:
            raise NotFound(f"learner import {batch.import_id} does not exist")
        if upload.status == "finished":
            return progress_of(upload)
        rows = (
            await session.execute(
                select(LearnerImportRow.row, LearnerImportRow.email, LearnerImportRow.name)
                .where(LearnerImportRow.import_id == upload.id)
                .order_by(LearnerImportRow.row)
                .offset(upload.processed_rows)
                .limit(batch.batch_size)
            )
        ).all()
        emails = {r.email for r in rows}
        first_rows = await _first_rows(session, upload.id, emails)
        await lock_customer(session, upload.customer_id)  # before the check, as SCIM and a manual add take it
        existing = await _existing(session, upload.customer_id, emails)
        new: list[NewLearner] = []
        errors: list[dict[str, object]] = []
        for r in rows:
            problem = email_problem(r.email)
            if problem is None and first_rows.get(r.email, r.row) < r.row:
                problem = f"{r.email} is already in row {first_rows[r.email]} of this file"
            if problem is None and r.email in existing:
                problem = f"{r.email} is already a learner of this customer"
            if problem is not None:
                errors.append({"import_id": upload.id, "row": r.row, "message": problem[:500]})
                continue
            new.append(NewLearner(email=r.email, name=(r.name or r.email.split("@")[0])[:200]))
        created = await create_learners(
            session,
            customer_id=upload.customer_id,
            new=new,
            source=LearnerSource.CSV,
            actor=batch.actor,
            now=batch.at,
        )
        if errors:
            await session.execute(insert(LearnerImportError), errors)
        licensed = sum(1 for learner in created if learner.licensed)
        upload.processed_rows += len(rows)
        upload.created += len(created)
        upload.licensed += licensed
        upload.unlicensed += len(created) - licensed
        upload.failed += len(errors)
        if not rows or upload.processed_rows >= upload.total_rows:
            upload.status = "finished"
            upload.finished_at = batch.at
        return progress_of(upload)


async def get_import(session: AsyncSession, customer_id: uuid.UUID, import_id: uuid.UUID) -> LearnerImport:
    upload = await session.get(LearnerImport, import_id)
    if upload is None or upload.customer_id != customer_id:
        raise NotFound(f"learner import {import_id} not found")
    return upload


async def import_errors(session: AsyncSession, import_id: uuid.UUID, *, limit: int) -> list[LearnerImportError]:
    query = select(LearnerImportError).where(LearnerImportError.import_id == import_id)
    return list((await session.execute(query.order_by(LearnerImportError.row).limit(limit))).scalars())
