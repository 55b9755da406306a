"""Payloads of the learner import workflow (`learner-import-{import_id}`). The file itself never travels here:
its rows wait in the database."""

import uuid
from datetime import datetime

from pydantic import BaseModel

from payloads.common import Actor


class LearnerImportInput(BaseModel):
    import_id: uuid.UUID
    partner_id: uuid.UUID
    customer_id: uuid.UUID
    total_rows: int
    actor: Actor
    batch_size: int = 500


class ImportBatch(BaseModel):
    import_id: uuid.UUID
    actor: Actor
    at: datetime
    batch_size: int


class ImportProgress(BaseModel):
    import_id: uuid.UUID
    total_rows: int
    processed_rows: int
    created: int
    licensed: int
    unlicensed: int
    failed: int
    done: bool
