"""HTTP Basic authentication against the directory."""

from __future__ import annotations

import base64
import binascii

from mailroom.store import Store
from mailroom.store.model import Mailbox

from .identity import Identity
from .passwords import CredentialCache, verify_password

CHALLENGE = 'Basic realm="mailroom"'


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


class Authenticator:
    def __init__(self, store: Store, cache: CredentialCache | None = None) -> None:
        self.store = store
        self.cache = cache or CredentialCache()

    def authenticate(self, header: str | None) -> Identity | None:
        """The Identity for these Basic credentials, or None. Blocking (argon2): call from a worker."""
        creds = parse_basic(header)
        if creds is None:
            return None
        mailbox = self.verify(*creds)
        return Identity.owner(mailbox) if mailbox is not None else None

    def verify(self, username: str, password: str) -> Mailbox | None:
        """The mailbox these credentials log in to, or None (EWS Basic and SMTP AUTH alike).
        Blocking (argon2): call from a worker."""
        cached = self.cache.get(username, password)
        if cached is not None:
            return cached
        # Accept the address, or DOMAIN\user as Windows clients send it (user@... or user part).
        login = username.split("\\", 1)[1] if "\\" in username else username
        mailbox, password_hash = self.store.directory.password_hash(login) or (None, None)
        if not verify_password(password_hash, password) or mailbox is None:  # verify first: equal timing
            return None
        self.cache.put(username, password, mailbox)
        return mailbox
