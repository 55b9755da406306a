"""Email delivery: one outbox message per activity; a temporary refusal is retried with backoff by Temporal,
a permanent one is recorded as failed for operators to see."""

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import outbox
from mail import smtp
from payloads.email import DeliverEmail, DeliveryResult, EmailStatus


class EmailActivities:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        host: str,
        port: int,
        mail_from: str,
        timeout: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._host, self._port, self._timeout = host, port, timeout
        self._mail_from = mail_from
        self._clock = clock

    @activity.defn(name="deliver_email")
    async def deliver_email(self, data: DeliverEmail) -> DeliveryResult:
        email = await outbox.load(self._sessions, data.email_id)
        if email.status != EmailStatus.PENDING:
            return DeliveryResult(email_id=email.id, status=EmailStatus(email.status))
        envelope = smtp.Envelope(
            message_id=email.message_id,
            mail_from=self._mail_from,
            recipient=email.recipient,
            subject=email.subject,
            text=email.text_body,
            html=email.html_body,
            created_at=email.created_at,
        )
        try:
            await smtp.send(envelope, host=self._host, port=self._port, timeout_seconds=self._timeout)
        except smtp.PermanentFailure as refusal:
            return await self._settle(data, EmailStatus.FAILED, str(refusal))
        except smtp.TemporaryFailure as problem:
            if activity.info().attempt >= data.max_attempts:
                return await self._settle(data, EmailStatus.FAILED, f"gave up after {data.max_attempts}: {problem}")
            await self._settle(data, EmailStatus.PENDING, str(problem))
            raise
        return await self._settle(data, EmailStatus.SENT, None)

    async def _settle(self, data: DeliverEmail, status: EmailStatus, error: str | None) -> DeliveryResult:
        await outbox.settle(self._sessions, data.email_id, status=status.value, at=self._clock(), error=error)
        if status is EmailStatus.FAILED:
            activity.logger.warning("email %s failed for good: %s", data.email_id, error)
        return DeliveryResult(email_id=data.email_id, status=status)
