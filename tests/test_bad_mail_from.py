"""LICENSING_MAIL_FROM is checked when a program starts, as the SMTP client checks the sender before each message:
a sender written without its angle brackets ("Partner Licensing licensing@example.com") used to be taken, and then
every email's activity failed on it with a traceback, retried without end, while each email stayed `pending` with
no error recorded and none went out."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from licensing.config import Settings
from mail import smtp as relay
from tests.smtp_server import SmtpServer

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "sender",
    ["Partner Licensing licensing@example.com", "Acme, Inc <licensing@example.com>", "licensing", "", "x <a b@c>"],
)
def test_a_sender_the_smtp_client_would_refuse_is_refused_as_a_setting(sender: str) -> None:
    with pytest.raises(ValueError, match=r"is not a sender address: write it as Name <address@example\.com>"):
        Settings(mail_from=sender)


@pytest.mark.parametrize(
    "sender",
    [
        "Partner Licensing <licensing@localhost>",  # the default
        "licensing@example.com",
        '"Acme, Inc" <licensing@example.com>',
        "Lizenz Büro <lizenz@example.com>",
    ],
)
async def test_each_sender_taken_sends(sender: str, smtp: SmtpServer) -> None:
    settings = Settings(mail_from=sender)
    envelope = relay.Envelope(
        message_id="<taken@licensing.test>",
        mail_from=settings.mail_from,
        recipient="manager@example.com",
        subject="Sender check",
        text="text",
        html="<p>text</p>",
        created_at=datetime.now(UTC),
    )
    await relay.send(envelope, relay.Relay("127.0.0.1", smtp.port, 10))
    assert len(smtp.inbox.to("manager@example.com", about="Sender check")) == 1


def test_the_worker_stops_at_start_naming_the_setting() -> None:
    env = {
        **os.environ,
        "LICENSING_MAIL_FROM": "Partner Licensing licensing@example.com",
        "LICENSING_TEMPORAL_ADDRESS": "127.0.0.1:1",
        "LICENSING_WORKER_METRICS_ADDRESS": "",
    }
    ran = subprocess.run([sys.executable, "worker.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode != 0
    assert "Traceback" not in ran.stderr, ran.stderr[-2000:]
    assert "LICENSING_MAIL_FROM: 'Partner Licensing licensing@example.com' is not a sender address" in ran.stderr
