"""The postman takes outbox emails to the relay: right after the transaction that wrote them, all on one
connection, or one at a time in the retrying `deliver_email` activity for those the relay would not take then."""

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db import outbox
from db.models import OutboxEmail
from db.session import read_sessions
from mail import smtp
from payloads.email import EmailsWritten

Written = TypeVar("Written", bound=EmailsWritten)

# Sending at once happens inside the activity that wrote the emails (and, for a decision, before its caller
# is answered): a relay slower than this leaves the rest to the retrying delivery activity.
AT_ONCE_SECONDS = 5.0
# Once the relay has taken a message, failing to record it would have the activity retried and the message sent
# again; so a database that is away for a moment is waited for: until shortly before the activity's own
# timeout, or this long outside an activity.
RECORD_SECONDS = 10.0


class Postman:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        relay: smtp.Relay,
        *,
        mail_from: str,
        clock: Callable[[], datetime],
        at_once_seconds: float = AT_ONCE_SECONDS,
        record_seconds: float = RECORD_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.readers = read_sessions(sessions)  # made once: each call makes a new engine proxy
        self.relay = relay
        self.mail_from = mail_from
        self.now = clock
        self._at_once_seconds = at_once_seconds
        self._record_seconds = record_seconds

    def envelope(self, email: OutboxEmail) -> smtp.Envelope:
        return smtp.Envelope(
            message_id=email.message_id,
            mail_from=self.mail_from,
            recipient=email.recipient,
            subject=email.subject,
            text=email.text_body,
            html=email.html_body,
            created_at=email.created_at,
        )

    async def sent(self, written: Written) -> Written:
        """An activity's result, once the emails it wrote were sent at once: with those still to deliver."""
        left = await self.send_at_once(written.email_ids, written_now=written.written_now())
        return written.handed_over(left)

    async def send_at_once(
        self, email_ids: Sequence[uuid.UUID], *, written_now: Sequence[OutboxEmail] = ()
    ) -> list[uuid.UUID]:
        """Send what is still pending of `email_ids` over one connection; return the ids still pending.
        `written_now`: messages just written (so pending), which need not be read back.

        A permanent refusal is recorded as failed and the next message goes on; a temporary one (or a slow or
        absent relay) stops here and leaves that message and the rest for the retrying delivery."""
        emails = await self._pending(email_ids, written_now)
        if not emails:
            return []
        settled: list[outbox.Attempt] = []
        problem: str | None = None
        try:
            async with asyncio.timeout(self._at_once_seconds), smtp.Connection(self._quick_relay()) as connection:
                for email in emails:
                    try:
                        await connection.send(self.envelope(email))
                    except smtp.PermanentFailure as refusal:
                        settled.append(outbox.Attempt(email.id, "failed", str(refusal)))
                    else:
                        settled.append(outbox.Attempt(email.id, "sent"))
        except (smtp.TemporaryFailure, smtp.PermanentFailure) as failure:  # the connection itself failed
            problem = str(failure)
        except TimeoutError:
            problem = f"the relay did not take the messages within {self._at_once_seconds:g} s"
        done = {attempt.email_id for attempt in settled}
        left = [email.id for email in emails if email.id not in done]
        if problem is not None and left:
            settled.append(outbox.Attempt(left[0], "pending", problem))
        await self.record(settled)
        return left

    async def _pending(self, email_ids: Sequence[uuid.UUID], written_now: Sequence[OutboxEmail]) -> list[OutboxEmail]:
        if not email_ids:
            return []
        just_written = {email.id: email for email in written_now}
        if all(email_id in just_written for email_id in email_ids):
            return [just_written[email_id] for email_id in email_ids]
        return await outbox.pending(self.readers, email_ids)

    async def record(self, attempts: Sequence[outbox.Attempt]) -> None:
        """Record what became of each message, waiting out a database that is briefly unreachable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._record_budget()
        pause = 0.2
        while True:
            try:
                await outbox.settle_each(self.sessions, attempts, at=self.now())
                return
            except (OperationalError, InterfaceError):
                if loop.time() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _record_budget(self) -> float:
        if activity.in_activity():
            info = activity.info()
            if info.start_to_close_timeout:
                ends = info.started_time + info.start_to_close_timeout
                return max((ends - datetime.now(UTC)).total_seconds() - 2, 0)
        return self._record_seconds

    def _quick_relay(self) -> smtp.Relay:
        return smtp.Relay(self.relay.host, self.relay.port, min(self.relay.timeout_seconds, self._at_once_seconds))
