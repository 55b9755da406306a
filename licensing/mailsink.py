"""A local SMTP sink for the embedded stack: saves every message as an .eml file and prints one line for it."""

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class SaveToFolder:
    def __init__(self, folder: Path, say: Callable[[str], None]) -> None:
        self._folder = folder
        self._say = say
        self._numbers = itertools.count(1)
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=default)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self._folder / f"{stamp}-{next(self._numbers):04d}.eml"
        path.write_bytes(raw)
        self._say(f"mail  to={','.join(envelope.rcpt_tos)}  subject={message['Subject']!r}  saved={path}")
        return "250 Message accepted for delivery"


def start(folder: Path, *, host: str, port: int, say: Callable[[str], None]) -> Controller:
    controller = Controller(SaveToFolder(folder, say), hostname=host, port=port)
    controller.start()
    return controller
