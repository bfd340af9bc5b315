"""Well-known MAPI property tags that name properties the server already has ([MS-OXPROPS]).

A client asking for PR_SUBJECT by tag gets the item's Subject, and setting it changes the
Subject, as on Exchange; any other tag is kept as a plain extended property."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from mailroom.store import ids
from mailroom.store.model import ExtendedValue, Item, Mailbox, extended_key

from .extended import ExtendedField

MSGFLAG_READ, MSGFLAG_UNSENT, MSGFLAG_HASATTACH, MSGFLAG_FROMME = 0x1, 0x8, 0x10, 0x20
_IMPORTANCE = {"Low": "0", "Normal": "1", "High": "2"}
_IMPORTANCE_OF = {number: name for name, number in _IMPORTANCE.items()}
_SENSITIVITY = {"Normal": "0", "Personal": "1", "Private": "2", "Confidential": "3"}


def _flags(item: Item, _mailbox: Mailbox) -> str | None:
    p = item.props
    value = (MSGFLAG_READ if p.get("IsRead") else 0) | (MSGFLAG_UNSENT if p.get("IsDraft") else 0)
    value |= MSGFLAG_HASATTACH if p.get("HasAttachments") else 0
    return str(value)


def _prop(name: str) -> Callable[[Item, Mailbox], str | None]:
    def read(item: Item, _mailbox: Mailbox) -> str | None:
        value = item.props.get(name)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return read


def _entry_id(item: Item, mailbox: Mailbox) -> str:
    return base64.b64encode(ids.ObjectId(ids.KIND_ITEM, mailbox.guid, item.id).entry_id).decode()


# Tags whose value is an item property kept under its EWS name (read, and searched, as that property).
PROPERTY_OF_TAG = {
    extended_key(tag=0x0037): "Subject",  # PR_SUBJECT
    extended_key(tag=0x001A): "ItemClass",  # PR_MESSAGE_CLASS
    extended_key(tag=0x0E06): "DateTimeReceived",  # PR_MESSAGE_DELIVERY_TIME
    extended_key(tag=0x0039): "DateTimeSent",  # PR_CLIENT_SUBMIT_TIME
    extended_key(tag=0x3007): "DateTimeCreated",  # PR_CREATION_TIME
    extended_key(tag=0x3008): "LastModifiedTime",  # PR_LAST_MODIFICATION_TIME
    extended_key(tag=0x0E08): "Size",  # PR_MESSAGE_SIZE
    extended_key(tag=0x0E1B): "HasAttachments",  # PR_HASATTACH
    extended_key(tag=0x1035): "InternetMessageId",  # PR_INTERNET_MESSAGE_ID
    extended_key(tag=0x0E04): "DisplayTo",  # PR_DISPLAY_TO
    extended_key(tag=0x0E03): "DisplayCc",  # PR_DISPLAY_CC
    extended_key(tag=0x0070): "ConversationTopic",  # PR_CONVERSATION_TOPIC
}

_READERS: dict[str, Callable[[Item, Mailbox], str | None]] = {
    **{key: _prop(name) for key, name in PROPERTY_OF_TAG.items()},
    extended_key(tag=0x0E07): _flags,  # PR_MESSAGE_FLAGS
    extended_key(tag=0x0FFF): _entry_id,  # PR_ENTRYID
    extended_key(tag=0x0017): lambda i, _m: _IMPORTANCE.get(i.props.get("Importance") or "Normal"),
    extended_key(tag=0x0036): lambda i, _m: _SENSITIVITY.get(i.props.get("Sensitivity") or "Normal"),
    extended_key(tag=0x1000): lambda i, _m: i.body.text if i.body and i.body.body_type == "Text" else None,
}

_WRITERS: dict[str, Callable[[dict[str, Any], str], None]] = {
    extended_key(tag=0x0037): lambda p, v: p.__setitem__("Subject", v),
    extended_key(tag=0x001A): lambda p, v: p.__setitem__("ItemClass", v),
    extended_key(tag=0x0E07): lambda p, v: p.__setitem__("IsRead", bool(int(v) & MSGFLAG_READ)),
    extended_key(tag=0x0017): lambda p, v: p.__setitem__("Importance", _IMPORTANCE_OF.get(v.strip(), "Normal")),
}


def read(field: ExtendedField, item: Item, mailbox: Mailbox) -> ExtendedValue | None:
    reader = _READERS.get(field.key)
    if reader is None:
        return None
    value = reader(item, mailbox)
    return ExtendedValue(field.key, field.prop_type, value) if value is not None else None


def apply_write(props: dict[str, Any], value: ExtendedValue) -> bool:
    """Set the property the tag names; False when the tag is not one the server maps."""
    writer = _WRITERS.get(value.key)
    if writer is None or isinstance(value.value, list):
        return False
    try:
        writer(props, value.value)
    except ValueError:
        return False
    return True
