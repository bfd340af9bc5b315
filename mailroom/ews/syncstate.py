"""The opaque SyncState of SyncFolderItems and SyncFolderHierarchy.

A small versioned structure (what is synced, to which journal seq, where an initial enumeration
stands) signed with an HMAC, so a state from another folder or mailbox, an edited one or garbage
is refused with ErrorInvalidSyncStateData instead of being trusted. The key is derived from the
mailbox database's GUID: it keeps states from being mixed up or tampered with by accident, but
that GUID is not a secret (it is part of every ChangeKey), so it is no protection against a
deliberate forgery by the mailbox's own user (who can only reach their own mailbox anyway).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from dataclasses import dataclass

from mailroom.store.model import Mailbox

from .errors import EWSError

VERSION = 1
ITEMS = 1
HIERARCHY = 2
WATERMARK = 3  # a notification watermark (mailroom/ews/notifications.py): folder 0, seq only
_MAC_SIZE = 16


@dataclass(frozen=True)
class SyncState:
    kind: int  # ITEMS or HIERARCHY
    folder_id: int  # the synced folder (the root of the synced subtree for a hierarchy)
    seq: int  # the journal seq the client is synced to
    cursor: int | None = None  # initial item enumeration in progress: the last item id returned
    walk_max: int = 0  # ... and the highest item id it covers (the folder's newest at the snapshot)
    known: tuple[int, ...] = ()  # hierarchy: the folder ids the client holds, ascending


def encode(state: SyncState, mailbox: Mailbox) -> str:
    body = bytes([VERSION, state.kind]) + uuid.UUID(mailbox.guid).bytes + _varints(
        state.folder_id, state.seq, 0 if state.cursor is None else state.cursor + 1, state.walk_max,
        len(state.known), *_deltas(state.known))
    return base64.b64encode(body + _mac(body, mailbox)).decode()


def decode(text: str, mailbox: Mailbox, kind: int, folder_id: int) -> SyncState:
    """The state ``text`` carries, if this server issued it for this kind of sync of this folder."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid() from exc
    body, mac = raw[:-_MAC_SIZE], raw[-_MAC_SIZE:]
    if len(body) < 18 or not hmac.compare_digest(mac, _mac(body, mailbox)):
        raise invalid()
    if body[0] != VERSION or body[1] != kind or body[2:18] != uuid.UUID(mailbox.guid).bytes:
        raise invalid()
    numbers = _read_varints(body[18:])
    if len(numbers) < 5 or numbers[0] != folder_id or len(numbers) != 5 + numbers[4]:
        raise invalid()
    cursor = numbers[2] - 1 if numbers[2] else None
    known, last = [], 0
    for delta in numbers[5:]:
        last += delta
        known.append(last)
    return SyncState(kind, folder_id, numbers[1], cursor, numbers[3], tuple(known))


def invalid() -> EWSError:
    return EWSError("ErrorInvalidSyncStateData", "The SyncState is not valid for this folder.")


def _mac(body: bytes, mailbox: Mailbox) -> bytes:
    key = hashlib.sha256(b"mailroom sync state\0" + mailbox.database_guid.encode()).digest()
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_SIZE]


def _deltas(values: tuple[int, ...]) -> list[int]:
    return [v - p for p, v in zip((0, *values), values, strict=False)]


def _varints(*values: int) -> bytes:
    out = bytearray()
    for value in values:
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
    return bytes(out)


def _read_varints(data: bytes) -> list[int]:
    values, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(value)
            value, shift = 0, 0
    if shift:
        raise invalid()
    return values
