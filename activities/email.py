"""Email delivery, one outbox message per activity, for what could not be sent at once: a temporary refusal is
retried with backoff by Temporal, a permanent one is recorded as failed for operators to see. A message that
another attempt holds (it is sending it, or died while its claim runs, `db.outbox`) is waited for within the
attempt when that claim ends soon, and otherwise tried again once it has lapsed; it is never given up on while
held, since its holder records what became of it."""

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import outbox
from mail import smtp
from mail.postman import Postman
from payloads.email import DeliverEmail, DeliveryResult, EmailStatus

# A claim ending within this long is waited out in the attempt (a writer's claim always is): time the activity
# spends running, which even a test server that skips idle time lets pass.
WAIT_IN_ATTEMPT = outbox.WRITER_CLAIM + timedelta(seconds=1)


def not_taken(email_id: uuid.UUID, problem: smtp.TemporaryFailure) -> ApplicationError:
    """A temporary failure as the workflow's history keeps it and the Web UI shows it. A relay's reply often quotes
    the recipient's address ("450 4.2.0 <ann@example.com>: Recipient address rejected"), so the reply itself is kept
    only in `outbox_emails.last_error`; the failure names the email by its id and the reply by its code."""
    if problem.reply_code is None:  # no reply: the connection failed or timed out, which names no recipient
        return ApplicationError(f"email {email_id} was not sent this time: {problem}", type="TemporaryFailure")
    return ApplicationError(
        f"the relay answered {problem.reply_code} to email {email_id}: not taken this time, tried again later "
        "(its reply is kept in outbox_emails.last_error)",
        type="TemporaryFailure",
    )


class EmailActivities:
    def __init__(self, postman: Postman) -> None:
        self._postman = postman

    @activity.defn(name="deliver_email")
    async def deliver_email(self, data: DeliverEmail) -> DeliveryResult:
        claimed = await self._claim(data)
        if claimed.held:
            return self._held(data, claimed.held[0])
        if not claimed.mine:
            email = await outbox.load(self._postman.readers, data.email_id)
            return DeliveryResult(email_id=email.id, status=EmailStatus(email.status))
        [email] = claimed.mine
        try:
            await self._postman.send_one(email)
        except smtp.PermanentFailure as refusal:
            return await self._settle(data, EmailStatus.FAILED, str(refusal))
        except smtp.TemporaryFailure as problem:
            if activity.info().attempt >= data.max_attempts:
                return await self._settle(data, EmailStatus.FAILED, f"gave up after {data.max_attempts}: {problem}")
            pending = outbox.Attempt(data.email_id, EmailStatus.PENDING.value, str(problem))
            await self._postman.record([pending], let_go=[email])
            raise not_taken(data.email_id, problem) from None
        return await self._settle(data, EmailStatus.SENT, None)

    async def _claim(self, data: DeliverEmail) -> outbox.Claimed:
        claimed = await outbox.claim(self._postman.sessions, [data.email_id], lasting=outbox.DELIVERY_CLAIM)
        if claimed.held and (wait := claimed.held[0].until - outbox.wall_clock()) <= WAIT_IN_ATTEMPT:
            await asyncio.sleep(max(wait.total_seconds(), 0) + 0.2)
            claimed = await outbox.claim(self._postman.sessions, [data.email_id], lasting=outbox.DELIVERY_CLAIM)
        return claimed

    def _held(self, data: DeliverEmail, held: outbox.Held) -> DeliveryResult:
        """Another attempt is sending the message: try again once its claim lapses (it will have recorded the
        outcome by then, or died). On the last attempt the message is left to its holder, which records it."""
        problem = (
            f"email {data.email_id} is being sent by another attempt, which holds it until {held.until:%H:%M:%S} UTC"
        )
        if activity.info().attempt >= data.max_attempts:
            activity.logger.warning("%s; left to that attempt", problem)
            return DeliveryResult(email_id=data.email_id, status=EmailStatus.PENDING)
        wait = max(held.until - outbox.wall_clock(), timedelta(0)) + timedelta(seconds=1)
        raise ApplicationError(problem, type="EmailHeld", next_retry_delay=wait)

    async def _settle(self, data: DeliverEmail, status: EmailStatus, error: str | None) -> DeliveryResult:
        await self._postman.record([outbox.Attempt(data.email_id, status.value, error)])
        if status is EmailStatus.FAILED:
            activity.logger.warning("email %s failed for good: %s", data.email_id, error)
        return DeliveryResult(email_id=data.email_id, status=status)
