"""A real SMTP server (aiosmtpd) for the tests: it keeps what it receives and can be told to refuse."""

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Inbox:
    """Messages received, and replies to give instead of accepting (e.g. ["421 busy", "421 busy"]); `slow_seconds`
    holds each message that long before answering, as a relay under load does. `recipient_refusals` are given to
    RCPT TO instead, `{address}` standing for the recipient (as a relay greylisting it quotes it)."""

    messages: list[EmailMessage] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    recipient_refusals: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slow_seconds: float = 0.0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        with self.lock:
            if self.recipient_refusals:
                return self.recipient_refusals.pop(0).format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.slow_seconds:
            await asyncio.sleep(self.slow_seconds)
        with self.lock:
            if self.refusals:
                return self.refusals.pop(0)
            self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 OK"

    def to(self, address: str, *, about: str = "") -> list[EmailMessage]:
        """What `address` received; with `about`, only messages whose subject holds that text."""
        with self.lock:
            return [m for m in self.messages if m["To"] == address and about in str(m["Subject"])]

    def about(self, text: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if text in str(m["Subject"])]


class SmtpServer:
    def __init__(self, *, utf8: bool = False) -> None:
        """`utf8`: offer SMTPUTF8, for addresses beyond ASCII."""
        self.inbox = Inbox()
        self.port = free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=utf8)

    def __enter__(self) -> "SmtpServer":
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
