"""SMTP delivery of outbox emails. Sorts failures into temporary (retry later) and permanent (give up)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
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
    """A 4xx reply (`reply_code`) or a connection problem (None): the same message may succeed later."""

    def __init__(self, reason: str, *, reply_code: int | None = None) -> None:
        super().__init__(reason)
        self.reply_code = reply_code


class PermanentFailure(Exception):
    """A 5xx reply: sending the same message again will not help."""


def _encoded(subject: str) -> str | Header:
    return subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject")


def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if name else address


def build_message(envelope: Envelope) -> Message:
    """A text and an HTML alternative. Built with the plain (compat32) classes: the `EmailMessage` API parses
    every header it is given, which cost ten times as much for messages whose headers we write ourselves.
    An address beyond ASCII needs SMTPUTF8, which only the `EmailMessage` API writes correctly."""
    # On one line: a line break in a customer's or partner's name must not end the header (or start another).
    subject = " ".join(envelope.subject.splitlines())
    if not (envelope.recipient.isascii() and parseaddr(envelope.mail_from)[1].isascii()):
        return _international(envelope, subject)
    message = MIMEMultipart("alternative")
    message["From"] = _address(envelope.mail_from)
    message["To"] = envelope.recipient
    message["Subject"] = _encoded(subject)  # type: ignore[assignment]  # compat32 takes a Header
    message["Message-ID"] = envelope.message_id
    message["Date"] = format_datetime(envelope.created_at)
    message.attach(MIMEText(envelope.text, "plain", "utf-8"))
    message.attach(MIMEText(envelope.html, "html", "utf-8"))
    return message


def _international(envelope: Envelope, subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = envelope.mail_from
    message["To"] = envelope.recipient
    message["Subject"] = subject
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
            raise TemporaryFailure(reasons, reply_code=codes[0]) from refused
        raise PermanentFailure(reasons) from refused
    except aiosmtplib.SMTPResponseException as reply:
        if 400 <= reply.code < 500:
            raise TemporaryFailure(f"{reply.code} {reply.message}", reply_code=reply.code) from reply
        raise PermanentFailure(f"{reply.code} {reply.message}") from reply
    except aiosmtplib.SMTPNotSupported as lacking:
        # A relay without SMTPUTF8 cannot take a message to an address beyond ASCII, however often it is asked.
        raise PermanentFailure(f"the relay cannot take this message: {lacking}") from lacking
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
