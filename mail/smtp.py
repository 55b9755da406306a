"""SMTP delivery of outbox emails. Sorts failures into temporary (retry later) and permanent (give up)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from types import TracebackType

import aiosmtplib


@dataclass(frozen=True)
class Relay:
    """Where mail goes: the SMTP relay and how long to wait for each of its replies."""

    host: str
    port: int
    timeout_seconds: float


@dataclass(frozen=True)
class Envelope:
    message_id: str
    mail_from: str
    recipient: str
    subject: str
    text: str
    html: str
    created_at: datetime


class TemporaryFailure(Exception):
    """A 4xx reply or a connection problem: the same message may succeed later."""


class PermanentFailure(Exception):
    """A 5xx reply: sending the same message again will not help."""


def build_message(envelope: Envelope) -> EmailMessage:
    message = EmailMessage()
    message["From"] = envelope.mail_from
    message["To"] = envelope.recipient
    message["Subject"] = envelope.subject
    message["Message-ID"] = envelope.message_id
    message["Date"] = format_datetime(envelope.created_at)
    message.set_content(envelope.text)
    message.add_alternative(envelope.html, subtype="html")
    return message


@contextmanager
def _sorted_failures() -> Iterator[None]:
    try:
        yield
    except aiosmtplib.SMTPRecipientsRefused as refused:
        codes = [r.code for r in refused.recipients]
        reasons = "; ".join(f"{r.code} {r.message}" for r in refused.recipients)
        if all(400 <= code < 500 for code in codes):
            raise TemporaryFailure(reasons) from refused
        raise PermanentFailure(reasons) from refused
    except aiosmtplib.SMTPResponseException as reply:
        if 400 <= reply.code < 500:
            raise TemporaryFailure(f"{reply.code} {reply.message}") from reply
        raise PermanentFailure(f"{reply.code} {reply.message}") from reply
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as problem:
        raise TemporaryFailure(f"{type(problem).__name__}: {problem}") from problem


class Connection:
    """One conversation with the relay for several messages; a refused message leaves it usable (the client
    resets the envelope), a dropped connection fails every later send as temporary."""

    def __init__(self, relay: Relay) -> None:
        self._client = aiosmtplib.SMTP(
            hostname=relay.host, port=relay.port, timeout=relay.timeout_seconds, start_tls=False
        )

    async def __aenter__(self) -> "Connection":
        with _sorted_failures():
            await self._client.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._client.is_connected:
            return
        if kind is not None:  # no polite goodbye after a failure (or a timeout): just hang up
            self._client.close()
            return
        try:
            await self._client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self._client.close()

    async def send(self, envelope: Envelope) -> None:
        with _sorted_failures():
            await self._client.send_message(build_message(envelope))


async def send(envelope: Envelope, relay: Relay) -> None:
    """One message on a connection of its own."""
    async with Connection(relay) as connection:
        await connection.send(envelope)
