"""Idempotency-Key on every POST of /api/v1 (the IETF httpapi draft): the first answer is kept for 24 hours per
caller; a repeat gets that answer again and changes nothing, while the caller's token still opens the API (else
401); the same key with another body is 422; a repeat while the first is still running is 409. An answer of 500 or
above is not kept: a repeat of the same request runs again (db/idempotency.py). Kept answers are sealed with the
caller's credential (api/sealed.py), and forgotten once their day is over."""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import sealed
from api.deps import check_still_opens
from api.errors import DATABASE_UNAVAILABLE, Unauthorized
from api.limits import Message, Receive, Scope, Send
from db import idempotency
from db.idempotency import ABANDONED_AFTER

HEADER = "idempotency-key"
PREFIX = "/api/v1/"
log = logging.getLogger(__name__)
DESCRIPTION = (
    "Optional. A unique string (at most 200 characters) per operation: a repeat with the same key, by the same caller,"
    " within 24 hours of its first use returns the first answer and changes nothing (Idempotent-Replayed: true), while"
    " the caller's token still opens the API (else 401). The same key with a different body is 422; a repeat while the"
    " first is still running is 409 (a request whose answer never came, its server having stopped, counts as running "
    "for ten minutes). An answer of 500 or above is not kept, so a repeat of the same request runs again (another "
    "request with that key is still 422); the key of a licence request or a CSV import also names the order or import "
    "it makes while it is kept, so a repeat after a 503 (the order may still be saved, the upload is saved) answers "
    "that same one instead of making another; the key of an assign, reject or cancel names that decision, so a repeat "
    "after a 503 (the decision may still be made) answers the order as the decision left it instead of a 409."
)


async def _answer(
    send: Send, status: int, body: bytes, content_type: str, replayed: bool = False, unknown: bool = False
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    if unknown:  # as the routes' 401s (api/errors.py)
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, detail: str) -> None:
    await _answer(send, status, json.dumps({"detail": detail}).encode(), "application/json", unknown=status == 401)


async def _still_opens(scope: Scope, send: Send, authorization: str) -> bool:
    """Whether the caller's token opens the API now, as the routes would check it; if not, it is refused as they
    refuse it. A kept answer outlives no access: a removed user, or a token since replaced (its kept answer may be
    the new token), gets no answer kept for it."""
    try:
        await check_still_opens(scope["app"].state.read_sessions, authorization)
    except Unauthorized as refused:
        await _refuse(send, 401, refused.message)
        return False
    except OperationalError:
        log.error("database unavailable", exc_info=True)
        await _refuse(send, 503, DATABASE_UNAVAILABLE)
        return False
    return True


# Keys whose day is over are deleted at most this often by each API process, after an answer is kept.
FORGET_EVERY = timedelta(minutes=5)


class Idempotency:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._forgotten_at: datetime | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = (
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if scope["type"] == "http"
            else {}
        )
        key = headers.get(HEADER)
        if key is None or scope.get("method") != "POST" or not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        try:  # headers arrive as bytes (read as latin-1 above); a key is text, written in UTF-8
            key = key.encode("latin-1").decode()
        except UnicodeDecodeError:
            await _refuse(send, 400, "Idempotency-Key must be text in UTF-8")
            return
        if not 1 <= len(key) <= 200:
            await _refuse(send, 400, "Idempotency-Key must be 1 to 200 characters")
            return
        body = await _whole_body(receive)
        credential = headers.get("authorization", "").encode()
        caller = hashlib.sha256(credential).hexdigest()
        bound_to = f"{caller}\n{key}".encode()
        fingerprint = _fingerprint(scope["path"], headers.get("content-type", ""), body)
        sessions: async_sessionmaker[AsyncSession] = scope["app"].state.sessions
        try:
            claimed = await idempotency.claim_or_race(
                sessions, caller=caller, key=key, fingerprint=fingerprint, now=datetime.now(UTC)
            )
        except OperationalError:
            log.error("database unavailable", exc_info=True)
            await _refuse(send, 503, DATABASE_UNAVAILABLE)
            return
        if not claimed.new:
            earlier = claimed.earlier
            assert earlier is not None
            if earlier.fingerprint != fingerprint:
                await _refuse(send, 422, "this Idempotency-Key was used for a different request; use a new key")
            elif earlier.status == "running":
                await _refuse(send, 409, "a request with this Idempotency-Key is still running; retry in a moment")
            elif await _still_opens(scope, send, headers.get("authorization", "")):
                assert earlier.response_status is not None
                try:
                    answer = sealed.unseal(credential, bound_to, earlier.response_body or b"")
                except sealed.Unreadable:
                    log.error("the kept answer of an Idempotency-Key does not open with its caller's credential")
                    await _refuse(send, 422, "this Idempotency-Key's earlier answer cannot be read; use a new key")
                    return
                await _answer(
                    send, earlier.response_status, answer, earlier.content_type or "application/json", replayed=True
                )
            return
        # The route may name what it makes after this use of the key (see `keyed_use`).
        scope.setdefault("state", {})[_FIRST_USED] = claimed.first_used
        assert claimed.claimed_at is not None
        attempt = _Attempt(sessions, caller, key, claimed.claimed_at)
        await self._first(scope, body, send, attempt, lambda kept: sealed.seal(credential, bound_to, kept))

    async def _first(
        self,
        scope: Scope,
        body: bytes,
        send: Send,
        attempt: "_Attempt",
        seal: Callable[[bytes], bytes],
    ) -> None:
        sent: dict[str, Any] = {"status": 500, "content_type": "application/json", "body": b""}

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        sent["content_type"] = value.decode()
            elif message["type"] == "http.response.body":
                sent["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay, keep)
        except BaseException:
            await _failed(attempt)
            raise
        if sent["status"] >= 500:
            await _failed(attempt)
        else:
            await idempotency.remember(
                attempt.sessions,
                caller=attempt.caller,
                key=attempt.key,
                claimed_at=attempt.claimed_at,
                status=sent["status"],
                body=seal(sent["body"]),
                content_type=sent["content_type"],
            )
            await self._forget_expired(attempt.sessions)

    async def _forget_expired(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Delete the keys whose day is over (their answers included), now and then; a failure waits for the next
        time: nothing depends on it but the table's size."""
        now = datetime.now(UTC)
        if self._forgotten_at is not None and now - self._forgotten_at < FORGET_EVERY:
            return
        self._forgotten_at = now
        try:
            forgotten = await idempotency.forget_expired(sessions, now=now)
        except DBAPIError:
            log.warning("could not delete expired Idempotency-Keys; trying again later", exc_info=True)
            return
        if forgotten:
            log.info("deleted %d Idempotency-Keys older than a day", forgotten)


@dataclass(frozen=True)
class _Attempt:
    """One run of a keyed request: the key it claimed, and when (only that claim may record the outcome)."""

    sessions: async_sessionmaker[AsyncSession]
    caller: str
    key: str
    claimed_at: datetime


async def _failed(attempt: _Attempt) -> None:
    """Let a retry of the request run again. With the database away (often why it failed) the key stays running
    until a retry takes it over as abandoned; the caller has had its answer already."""
    try:
        await idempotency.fail(attempt.sessions, caller=attempt.caller, key=attempt.key, claimed_at=attempt.claimed_at)
    except OperationalError:
        log.warning("could not record that a keyed request failed; a retry may run after %s", ABANDONED_AFTER)


_FIRST_USED = "idempotency_key_first_used"


def keyed_use(request: Request) -> str | None:
    """For a request with an Idempotency-Key: the key and its first use, the same for every retry while the key is
    kept (24 hours) and different for the same key used again after it was forgotten. A route that names what it
    makes after it (an order, an import) finds it again on a retry, and makes a new one on a later reuse."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    first_used = getattr(request.state, _FIRST_USED, None)
    return key if first_used is None else f"{key}\n{first_used.isoformat()}"


def _fingerprint(path: str, content_type: str, body: bytes) -> str:
    """What makes two requests the same: path and body. A multipart body's boundary is chosen afresh for each
    request by most clients (curl, httpx, browsers), so it is left out: the same file sent again is the same."""
    kind, _, parameters = content_type.partition(";")
    if kind.strip().lower() == "multipart/form-data":
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "boundary" and value.strip('"'):
                body = body.replace(b"--" + value.strip('"').encode("latin-1"), b"--boundary")
    return hashlib.sha256(f"{path}\n".encode() + body).hexdigest()


async def _whole_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Name the header on every POST of /api/v1 in the OpenAPI document."""
    parameter = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": DESCRIPTION,
        "schema": {"type": "string", "maxLength": 200},
    }
    for path, operations in openapi.get("paths", {}).items():
        if path.startswith(PREFIX) and "post" in operations:
            operations["post"].setdefault("parameters", []).append(parameter)
    return openapi
