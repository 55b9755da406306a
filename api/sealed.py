"""Kept answers sealed with the caller's own credential.

A keyed POST's answer is kept for its retries (api/idempotency.py), and some answers carry a secret: the token of
a new user or of a directory's SCIM connection, which the database otherwise keeps only as a hash. So a kept
answer is encrypted (AES-GCM) with a key derived from the caller's `Authorization` header, which the database
never holds (it keeps the header's SHA-256 to tell callers apart, from which this key cannot be made): only a
retry carrying the same credential opens it, and a copy of the database or a backup reveals none of it.
"""

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Marks a sealed answer; answers kept before sealing (JSON, at most a day old) start otherwise and are read as kept.
MARK = b"sealed-v1:"
_PURPOSE = b"partner-licensing idempotent answer"
_NONCE_BYTES = 12


class Unreadable(Exception):
    """The sealed answer does not open with this credential (it was not sealed with it, or was altered)."""


def _key(credential: bytes) -> AESGCM:
    return AESGCM(hmac.new(credential, _PURPOSE, hashlib.sha256).digest())


def seal(credential: bytes, bound_to: bytes, answer: bytes) -> bytes:
    """`answer` encrypted for `credential`, and bound to `bound_to` (the caller's hash and the key's name), so
    that a sealed answer moved to another row does not open."""
    nonce = os.urandom(_NONCE_BYTES)
    return MARK + nonce + _key(credential).encrypt(nonce, answer, bound_to)


def unseal(credential: bytes, bound_to: bytes, kept: bytes) -> bytes:
    if not kept.startswith(MARK):
        return kept
    sealed = kept[len(MARK) :]
    try:
        return _key(credential).decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], bound_to)
    except (InvalidTag, ValueError) as error:
        raise Unreadable("the kept answer does not open with this caller's credential") from error
