"""Payloads of email delivery."""

import uuid
from enum import StrEnum

from pydantic import BaseModel


class DeliverEmail(BaseModel):
    email_id: uuid.UUID
    # The retry policy's attempt limit: on the last attempt a temporary refusal is recorded as failed.
    max_attempts: int = 12


class EmailStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class DeliveryResult(BaseModel):
    email_id: uuid.UUID
    status: EmailStatus
