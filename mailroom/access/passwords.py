"""Password hashing (argon2id) and a short-lived cache of verified credentials, so a client that
sends Basic credentials on every request does not pay for an argon2 verification each time."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mailroom.store.model import Mailbox

_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password must not be empty")
    return _HASHER.hash(password)


@cache
def _decoy_hash() -> str:
    return _HASHER.hash(os.urandom(16).hex())


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password``; without a hash (no such user, no password set) a decoy hash is
    verified all the same, so the answer takes as long and says nothing about the user."""
    try:
        return _HASHER.verify(password_hash or _decoy_hash(), password) and bool(password_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class CredentialCache:
    """Remembers (username, password) pairs that verified, keyed by a salted digest, for ``ttl`` seconds."""

    def __init__(self, ttl: float = 300.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._salt = os.urandom(16)
        self._entries: dict[bytes, tuple[float, Mailbox]] = {}
        self._lock = threading.Lock()

    def _key(self, username: str, password: str) -> bytes:
        # Keyed BLAKE2b: a MAC like HMAC-SHA256, in one call (this runs on every request).
        return hashlib.blake2b(f"{username.lower()}\0{password}".encode(), key=self._salt, digest_size=32).digest()

    def get(self, username: str, password: str) -> Mailbox | None:
        """The mailbox these credentials verified for, if still fresh."""
        key = self._key(username, password)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, username: str, password: str, mailbox: Mailbox) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[self._key(username, password)] = (time.monotonic() + self.ttl, mailbox)

    def forget(self, address: str) -> None:
        with self._lock:
            for key in [k for k, (_, m) in self._entries.items() if m.address == address]:
                del self._entries[key]
