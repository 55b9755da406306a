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


class EmailsWritten(BaseModel):
    """The outbox emails an activity wrote for an event (earlier ones of the same event kept)."""

    email_ids: list[uuid.UUID] = []
    # Set by an activity that also sent them at once: those the relay did not take then. None (results
    # recorded before emails were sent at once): none was sent, every one of `email_ids` is still due.
    emails_to_retry: list[uuid.UUID] | None = None

    def emails_due(self) -> list[uuid.UUID]:
        """The emails the workflow still has to deliver, one retrying activity each."""
        return self.email_ids if self.emails_to_retry is None else self.emails_to_retry


class DeliveryResult(BaseModel):
    email_id: uuid.UUID
    status: EmailStatus
