"""Learners (Users > Add Users), the Expired Licences tab, allocation, deletion, training records and reports."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from api import auth, paging
from api.clock import now
from api.deps import CurrentUser, SessionDep
from api.schemas import (
    AllocationOut,
    AllocationRequest,
    LearnerAdded,
    LearnerCreate,
    LearnerOut,
    Page,
    TrainingRecordCreate,
    TrainingRecordOut,
)
from db import directory, learners, training
from db.models import Learner
from rules.licences import LearnerSource, LearnerStatus

router = APIRouter(tags=["learners"])

NO_LICENCE_NOTE = (
    "no licence was free, so the learner was added unlicensed; request licences, then allocate one with "
    'POST licence-allocations {"learner_ids": [...]} or {"all": "unlicensed"} (listed by ?licence_status=unlicensed)'
)


def learner_out(learner: Learner) -> LearnerOut:
    return LearnerOut.model_validate(learner, from_attributes=True)


@router.post("/customers/{customer_id}/learners", status_code=status.HTTP_201_CREATED, response_model=LearnerAdded)
async def add_learner(
    customer_id: uuid.UUID, body: LearnerCreate, session: SessionDep, caller: CurrentUser
) -> LearnerAdded:
    """Add a learner by hand. It takes a free licence automatically, in the same transaction."""
    async with session.begin():
        actor = auth.act_for_customer(caller, await directory.get_customer(session, customer_id))
        learner = await learners.add_learner(
            session,
            customer_id=customer_id,
            email=str(body.email),
            name=body.name,
            source=LearnerSource.MANUAL,
            actor=actor,
            now=now(),
        )
    note = NO_LICENCE_NOTE if learner.licence_status == LearnerStatus.UNLICENSED else None
    return LearnerAdded(**learner_out(learner).model_dump(), note=note)


@router.get("/customers/{customer_id}/learners", response_model=Page[LearnerOut])
async def list_learners(
    customer_id: uuid.UUID,
    session: SessionDep,
    caller: CurrentUser,
    licence_status: Annotated[LearnerStatus | None, Query(description="expired: the Expired Licences tab")] = None,
    page: paging.PageRequest = Depends(paging.page_request),
) -> Page[LearnerOut]:
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    query = select(Learner).where(Learner.customer_id == customer_id)
    if licence_status is not None:
        query = query.where(Learner.licence_status == licence_status.value)
    rows = list((await session.execute(paging.newest_first(query, page, Learner.created_at, Learner.id))).scalars())
    return Page(
        items=[learner_out(learner) for learner in rows[: page.limit]],
        next_cursor=paging.next_cursor(rows, page, "created_at", "id"),
    )


@router.get("/customers/{customer_id}/learners/{learner_id}", response_model=LearnerOut)
async def get_learner(
    customer_id: uuid.UUID, learner_id: uuid.UUID, session: SessionDep, caller: CurrentUser
) -> LearnerOut:
    auth.see_customer(caller, await directory.get_customer(session, customer_id))
    return learner_out(await learners.get_learner(session, customer_id, learner_id))


@router.post("/customers/{customer_id}/licence-allocations", response_model=AllocationOut)
async def allocate_licences(
    customer_id: uuid.UUID, body: AllocationRequest, session: SessionDep, caller: CurrentUser
) -> AllocationOut:
    """Allocate licences to chosen learners, or to all expired (or unlicensed) learners. All or nothing:
    too few free licences is a 409 `asked N, available M`, and nobody is allocated."""
    async with session.begin():
        actor = auth.act_for_customer(caller, await directory.get_customer(session, customer_id))
        allocated = await learners.allocate(
            session,
            customer_id=customer_id,
            learner_ids=body.learner_ids,
            every=LearnerStatus(body.all) if body.all else None,
            actor=actor,
            now=now(),
        )
    return AllocationOut(allocated=len(allocated), learners=[learner_out(learner) for learner in allocated])


@router.delete("/customers/{customer_id}/learners/{learner_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_learner(
    customer_id: uuid.UUID, learner_id: uuid.UUID, session: SessionDep, caller: CurrentUser
) -> Response:
    """Delete a learner: its licence is free again (with the term it had left) and its training records go.
    Export the training report first if you need them."""
    async with session.begin():
        actor = auth.act_for_customer(caller, await directory.get_customer(session, customer_id))
        await learners.delete_learner(session, customer_id=customer_id, learner_id=learner_id, actor=actor, now=now())
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/customers/{customer_id}/learners/{learner_id}/training-records",
    status_code=status.HTTP_201_CREATED,
    response_model=TrainingRecordOut,
)
async def add_training_record(
    customer_id: uuid.UUID,
    learner_id: uuid.UUID,
    body: TrainingRecordCreate,
    session: SessionDep,
    caller: CurrentUser,
) -> TrainingRecordOut:
    async with session.begin():
        actor = auth.act_for_customer(caller, await directory.get_customer(session, customer_id))
        learner = await learners.get_learner_kept(session, customer_id, learner_id)
        record = await training.add_training_record(
            session,
            learner=learner,
            course=body.course,
            completed_at=body.completed_at,
            score=body.score,
            actor=actor,
            now=now(),
        )
    return TrainingRecordOut.model_validate(record, from_attributes=True)
