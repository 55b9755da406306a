"""The postman takes outbox emails to the relay: right after the transaction that wrote them, all on one
connection, or one at a time in the retrying `deliver_email` activity for those the relay would not take then."""

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
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
# Sending one message in the retrying delivery: well within the activity's 45-second timeout.
SEND_SECONDS = 30.0
# A claim outlasts sending and recording what became of the messages.
assert outbox.WRITER_CLAIM.total_seconds() > AT_ONCE_SECONDS + RECORD_SECONDS
assert outbox.DELIVERY_CLAIM.total_seconds() > SEND_SECONDS + RECORD_SECONDS


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
        `written_now`: messages just written (so pending, and claimed for this activity), which need not be read
        back or claimed again. A message another attempt holds is left to it (and returned as pending).

        A permanent refusal is recorded as failed and the next message goes on; a temporary one (or a slow or
        absent relay) stops here and leaves that message and the rest for the retrying delivery."""
        emails, held = await self._take(email_ids, written_now)
        if not emails:
            return held
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
        unsent = [email for email in emails if email.id not in done]
        if problem is not None and unsent:
            settled.append(outbox.Attempt(unsent[0].id, "pending", problem))
        await self.record(settled, let_go=unsent)
        left = set(held) | {email.id for email in unsent}
        return [email_id for email_id in email_ids if email_id in left]

    async def _take(
        self, email_ids: Sequence[uuid.UUID], written_now: Sequence[OutboxEmail]
    ) -> tuple[list[OutboxEmail], list[uuid.UUID]]:
        """The messages to send now (claimed) and the ids of those another attempt holds. Messages just written
        are claimed already, unless so much time passed since (a slow commit, a slow call before sending) that
        the claim would not outlast sending and recording: then it is renewed first, or they count as earlier."""
        enough = outbox.wall_clock() + timedelta(seconds=self._at_once_seconds + self._record_seconds)
        timely = [email for email in written_now if email.claimed_until and email.claimed_until > enough]
        late = [email for email in written_now if email not in timely]
        renewed = await outbox.extend(self.sessions, late, lasting=outbox.WRITER_CLAIM)
        just_written = {email.id: email for email in written_now if email in timely or email.id in renewed}
        earlier = [email_id for email_id in email_ids if email_id not in just_written]
        claimed = await outbox.claim(self.sessions, earlier, lasting=outbox.WRITER_CLAIM)
        mine = {email.id: email for email in claimed.mine} | just_written
        return [mine[email_id] for email_id in email_ids if email_id in mine], [held.email_id for held in claimed.held]

    async def record(self, attempts: Sequence[outbox.Attempt], *, let_go: Sequence[OutboxEmail] = ()) -> None:
        """Record what became of each message, and let go of the claims on `let_go` (left pending), waiting out
        a database that is briefly unreachable."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._record_budget()
        pause = 0.2
        while True:
            try:
                await outbox.settle_each(self.sessions, attempts, at=self.now(), let_go=let_go)
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

    async def send_one(self, email: OutboxEmail) -> None:
        """One message on a connection of its own, within `SEND_SECONDS` in all (the relay's timeout is per step):
        the claim of the attempt sending it outlasts the send."""
        try:
            async with asyncio.timeout(SEND_SECONDS):
                await smtp.send(self.envelope(email), self.relay)
        except TimeoutError:
            raise smtp.TemporaryFailure(f"the relay did not take the message within {SEND_SECONDS:g} s") from None

    def _quick_relay(self) -> smtp.Relay:
        return smtp.Relay(self.relay.host, self.relay.port, min(self.relay.timeout_seconds, self._at_once_seconds))
