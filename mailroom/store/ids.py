"""Opaque, stable, URL-safe identifiers for folders, items and attachments.

An id is base64url (no padding) of: version byte, kind byte, the mailbox GUID (16 bytes) and the
row id (8 bytes, big endian); attachment ids add the attachment row id; occurrence ids (of a
recurring calendar item) carry the master's row id and add the instance index. A move or copy
makes a new row, so it makes a new id, as Exchange does since 2007 SP1 RU4. The ChangeKey follows Exchange's
layout (kind, length 22, database GUID, 6-byte change number), base64 encoded.
"""

from __future__ import annotations

import base64
import binascii
import functools
import struct
import uuid
from dataclasses import dataclass

VERSION = 1
KIND_FOLDER = ord("F")
KIND_ITEM = ord("I")
KIND_ATTACHMENT = ord("A")
KIND_OCCURRENCE = ord("O")
_WITH_SUFFIX = (KIND_ATTACHMENT, KIND_OCCURRENCE)  # kinds whose ids carry a second 8-byte number
_HEAD = struct.Struct(">BB16sQ")
_SUFFIX = struct.Struct(">Q")  # the second number of the kinds _WITH_SUFFIX

CHANGEKEY_FOLDER = 1
CHANGEKEY_MESSAGE = 9
CHANGEKEY_CALENDAR = 15


class MalformedId(ValueError):
    """The text is not an id this server made."""


@functools.lru_cache(maxsize=4096)
def _guid_bytes(guid: str) -> bytes:
    return uuid.UUID(guid).bytes


@functools.lru_cache(maxsize=4096)
def _guid_text(raw: bytes) -> str:
    return str(uuid.UUID(bytes=raw))


@dataclass(frozen=True, slots=True)
class ObjectId:
    kind: int
    mailbox_guid: str
    row_id: int
    attachment_id: int = 0  # the attachment row id, or an occurrence's instance index

    def encode(self) -> str:
        return _encode(self.kind, self.mailbox_guid, self.row_id, self.attachment_id)

    @property
    def entry_id(self) -> bytes:
        """The binary form used for EntryId/HexEntryId conversions."""
        return base64.urlsafe_b64decode(self.encode() + "==")


def decode(text: str, kind: int | None = None) -> ObjectId:
    if not text or len(text) > 200:
        raise MalformedId(text)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedId(text) from exc
    return from_entry_id(raw, kind)


def from_entry_id(raw: bytes, kind: int | None = None) -> ObjectId:
    if len(raw) < _HEAD.size:
        raise MalformedId(raw.hex())
    version, found_kind, guid, row_id = _HEAD.unpack_from(raw)
    expected = _HEAD.size + (_SUFFIX.size if found_kind in _WITH_SUFFIX else 0)
    if version != VERSION or found_kind not in (KIND_FOLDER, KIND_ITEM, *_WITH_SUFFIX) or len(raw) != expected:
        raise MalformedId(raw.hex())
    if kind is not None and found_kind != kind:
        raise MalformedId(raw.hex())
    attachment_id = _SUFFIX.unpack_from(raw, _HEAD.size)[0] if found_kind in _WITH_SUFFIX else 0
    return ObjectId(found_kind, _guid_text(guid), row_id, attachment_id)


def _encode(kind: int, mailbox_guid: str, row_id: int, attachment_id: int = 0) -> str:
    """An id's text (without making an ObjectId: this runs for every id a response carries)."""
    raw = _HEAD.pack(VERSION, kind, _guid_bytes(mailbox_guid), row_id)
    if kind in _WITH_SUFFIX:
        raw += _SUFFIX.pack(attachment_id)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def folder_id(mailbox_guid: str, row_id: int) -> str:
    return _encode(KIND_FOLDER, mailbox_guid, row_id)


def item_id(mailbox_guid: str, row_id: int) -> str:
    return _encode(KIND_ITEM, mailbox_guid, row_id)


def attachment_id(mailbox_guid: str, item_row_id: int, attachment_row_id: int) -> str:
    return _encode(KIND_ATTACHMENT, mailbox_guid, item_row_id, attachment_row_id)


def occurrence_id(mailbox_guid: str, master_row_id: int, instance_index: int) -> str:
    return _encode(KIND_OCCURRENCE, mailbox_guid, master_row_id, instance_index)


def change_key(kind: int, database_guid: str, change_number: int) -> str:
    raw = struct.pack("<II", kind, 22) + _guid_bytes(database_guid) + change_number.to_bytes(6, "big")
    return base64.b64encode(raw).decode("ascii")


def change_number_of(change_key_text: str) -> int:
    """The change number a ChangeKey carries; MalformedId when it is not one of ours."""
    try:
        raw = base64.b64decode(change_key_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedId(change_key_text) from exc
    if len(raw) != 30 or struct.unpack_from("<I", raw, 4)[0] != 22:
        raise MalformedId(change_key_text)
    return int.from_bytes(raw[24:30], "big")
