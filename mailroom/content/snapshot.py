"""One item as a self-describing, versioned byte string: properties, body, extended properties,
attachments (an item attachment nests another snapshot) and MIME.

It is how an item attachment's item is stored, and the Data that ExportItems hands out and
UploadItems takes back, so the two can never drift apart. ``load`` checks everything it reads:
the bytes may come from a client.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from mailroom.store.model import Attachment, Body, ExtendedValue, NewItem

MAGIC = b"mailroom-item/1\n"
_SCALARS = (str, bool, int, float)
# Characters neither XML 1.0 nor PostgreSQL text can carry (controls, lone surrogates, U+FFFE/F).
_UNSTORABLE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Corrupt(ValueError):
    """The bytes are not a snapshot this server made."""


def clean(text: str) -> str:
    """``text`` without the characters no response or database could hold. Text whose characters
    are all printable but for tabs and line breaks has none of them (scanned in C, many times
    faster than the pattern on a message body)."""
    if text.replace("\r", "").replace("\n", "").replace("\t", "").isprintable():
        return text
    return _UNSTORABLE.sub("", text)


def dump(new: NewItem) -> bytes:
    """The snapshot of ``new``; ``load`` gives it back."""
    doc = {
        "props": new.props,
        "body": {"type": new.body.body_type, "text": new.body.text} if new.body else None,
        "mime": _b64(new.mime) if new.mime is not None else None,
        "extended": [{"key": e.key, "type": e.prop_type, "value": e.value} for e in new.extended],
        "attachments": [_dump_attachment(a) for a in new.attachments],
    }
    return MAGIC + json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _dump_attachment(att: Attachment) -> dict[str, Any]:
    return {"kind": att.kind, "name": att.name, "content_type": att.content_type, "content_id": att.content_id,
            "content_location": att.content_location, "is_inline": att.is_inline,
            "is_contact_photo": att.is_contact_photo, "last_modified": att.last_modified,
            "content": _b64(att.content)}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def load(data: bytes) -> NewItem:
    """The item ``dump`` wrote; Corrupt when ``data`` is anything else."""
    if not data.startswith(MAGIC):
        raise Corrupt("not an item snapshot")
    try:
        doc = json.loads(data[len(MAGIC):].decode(), parse_constant=_no_constant, parse_float=_finite)
        return _item(_check(doc, dict))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, binascii.Error, RecursionError) as exc:
        raise Corrupt(f"malformed item snapshot: {exc}") from exc


def _item(doc: dict[str, Any]) -> NewItem:
    props = _check(doc["props"], dict)
    for name, value in props.items():
        if not (value is None or isinstance(value, _SCALARS) or _is_text_list(value)):
            raise Corrupt(f"property {name} has an invalid value")
        _storable(name)
        _storable(value)
    return NewItem(
        props=props,
        body=_body(doc["body"]) if doc["body"] is not None else None,
        mime=_bytes(doc["mime"]) if doc["mime"] is not None else None,
        extended=[_extended(_check(e, dict)) for e in _check(doc["extended"], list)],
        attachments=[_attachment(_check(a, dict)) for a in _check(doc["attachments"], list)],
    )


def _body(doc: Any) -> Body:
    return Body(_choice(_check(doc, dict)["type"], ("HTML", "Text")), _text(doc["text"]))


def _extended(doc: dict[str, Any]) -> ExtendedValue:
    value = doc["value"]
    if not (isinstance(value, str) or _is_text_list(value)):
        raise Corrupt("an extended property value must be text or a list of text")
    return ExtendedValue(_text(doc["key"]), _text(doc["type"]), _storable(value))


def _attachment(doc: dict[str, Any]) -> Attachment:
    att = Attachment(kind=_choice(doc["kind"], ("file", "item")), name=_optional_text(doc["name"]),
                     content_type=_optional_text(doc["content_type"]), content_id=_optional_text(doc["content_id"]),
                     content_location=_optional_text(doc["content_location"]),
                     is_inline=_check(doc["is_inline"], bool), is_contact_photo=_check(doc["is_contact_photo"], bool),
                     last_modified=_text(doc["last_modified"]), content=_bytes(doc["content"]))
    if att.kind == "item":
        load(att.content)
    att.size = len(att.content)
    return att


def _no_constant(name: str) -> None:
    raise Corrupt(f"{name} is not a value an item can hold")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Corrupt(f"{text} is not a value an item can hold")
    return value


def _check(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise Corrupt(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


def _is_text_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _storable(value: Any) -> Any:
    """``value`` unchanged; Corrupt when text in it could not be stored or rendered."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str) and clean(text) != text:
            raise Corrupt("text with characters that cannot be stored")
    return value


def _text(value: Any) -> str:
    return _storable(_check(value, str))


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _choice(value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise Corrupt(f"{value!r} is not one of {allowed}")
    return value


def _bytes(value: Any) -> bytes:
    return base64.b64decode(_text(value), validate=True)
