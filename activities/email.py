"""Email delivery, one outbox message per activity, for what could not be sent at once: a temporary refusal is
retried with backoff by Temporal, a permanent one is recorded as failed for operators to see."""

from temporalio import activity

from db import outbox
from mail import smtp
from mail.postman import Postman
from payloads.email import DeliverEmail, DeliveryResult, EmailStatus


class EmailActivities:
    def __init__(self, postman: Postman) -> None:
        self._postman = postman

    @activity.defn(name="deliver_email")
    async def deliver_email(self, data: DeliverEmail) -> DeliveryResult:
        email = await outbox.load(self._postman.readers, data.email_id)
        if email.status != EmailStatus.PENDING:
            return DeliveryResult(email_id=email.id, status=EmailStatus(email.status))
        try:
            await smtp.send(self._postman.envelope(email), self._postman.relay)
        except smtp.PermanentFailure as refusal:
            return await self._settle(data, EmailStatus.FAILED, str(refusal))
        except smtp.TemporaryFailure as problem:
            if activity.info().attempt >= data.max_attempts:
                return await self._settle(data, EmailStatus.FAILED, f"gave up after {data.max_attempts}: {problem}")
            await self._settle(data, EmailStatus.PENDING, str(problem))
            raise
        return await self._settle(data, EmailStatus.SENT, None)

    async def _settle(self, data: DeliverEmail, status: EmailStatus, error: str | None) -> DeliveryResult:
        await self._postman.record([outbox.Attempt(data.email_id, status.value, error)])
        if status is EmailStatus.FAILED:
            activity.logger.warning("email %s failed for good: %s", data.email_id, error)
        return DeliveryResult(email_id=data.email_id, status=status)
