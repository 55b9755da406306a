"""Payloads of email delivery."""

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Self

from pydantic import BaseModel, PrivateAttr

if TYPE_CHECKING:
    from db.models import OutboxEmail
    from db.notices import Written


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
    # The messages the activity's own transaction wrote, as written: the postman sends them without reading
    # them back. Never serialized (a result in a history has none); empty when an earlier attempt wrote them.
    _written_now: "list[OutboxEmail]" = PrivateAttr(default_factory=list)

    def __eq__(self, other: object) -> bool:
        """Results are equal when they say the same: the messages at hand are not part of what they say."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def wrote(self, written: "Written") -> Self:
        """This result with the notices its transaction wrote (`db.notices.write_notices`)."""
        self.email_ids = written.email_ids
        self._written_now = written.new
        return self

    def written_now(self) -> "list[OutboxEmail]":
        return self._written_now

    def handed_over(self, emails_to_retry: list[uuid.UUID]) -> Self:
        """This result once the postman took the messages: those the relay did not take then are to retry."""
        result = self.model_copy(update={"emails_to_retry": emails_to_retry})
        result._written_now = []
        return result

    def emails_due(self) -> list[uuid.UUID]:
        """The emails the workflow still has to deliver, one retrying activity each."""
        return self.email_ids if self.emails_to_retry is None else self.emails_to_retry


class DeliveryResult(BaseModel):
    email_id: uuid.UUID
    status: EmailStatus
