"""SMTP delivery of one outbox email. Sorts failures into temporary (retry later) and permanent (give up)."""

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

import aiosmtplib


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


async def send(envelope: Envelope, *, host: str, port: int, timeout_seconds: float) -> None:
    try:
        await aiosmtplib.send(
            build_message(envelope), hostname=host, port=port, timeout=timeout_seconds, start_tls=False
        )
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
    except (aiosmtplib.SMTPException, OSError) as problem:
        raise TemporaryFailure(f"{type(problem).__name__}: {problem}") from problem
