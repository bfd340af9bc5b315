"""The few header fields the transport itself reads (Message-ID, Subject, From, Sender), read
once per message where it arrives and carried along with it (``Submission.headers``) to the
queue and the tracking log.

The header block is split as the email package's parser splits it, without parsing the body,
and a value is turned into the email package's header object only when plain text would not
read the same (``mime.field_text``).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from functools import cached_property

from mailroom.content.mime import field_text

# A header line as email.feedparser tells one (its headerRE); the first line that is not one ends the block.
_HEADER_LINE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")
_LINE = re.compile(r"([^\r\n]*)(?:\r\n|\r|\n|$)")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+):")  # RFC 5322 ftext


@dataclass(frozen=True)
class MessageHeaders:
    """A message's header fields, (name, raw value) in order, with the transport's readings."""

    fields: tuple[tuple[str, str], ...]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, decoded and stripped."""
        wanted = name.lower()
        return [_decoded(n, v) for n, v in self.fields if n.lower() == wanted]

    def get(self, name: str) -> str:
        """The first value of ``name``, decoded and stripped; "" when absent."""
        found = self.get_all(name)
        return found[0] if found else ""

    def addresses(self, name: str) -> list[str]:
        """The addresses in every ``name`` field."""
        return [a for _, a in email.utils.getaddresses(self.get_all(name)) if a]

    @cached_property
    def message_id(self) -> str:
        return self.get("Message-ID")

    @cached_property
    def subject(self) -> str:
        return self.get("Subject")

    @cached_property
    def sender(self) -> str:
        """The message's sender as the tracking log records it: Sender:, else the first From: address."""
        for name in ("Sender", "From"):
            addresses = self.addresses(name)
            if addresses:
                return addresses[0]
        return ""


def read_headers(raw: bytes) -> MessageHeaders:
    """The header block of ``raw`` (bytes as the email package reads them: 8-bit as surrogate escapes)."""
    fields: list[tuple[str, list[str]]] = []
    text = raw.decode("ascii", "surrogateescape")
    for number, match in enumerate(_LINE.finditer(text)):  # lazily: the body is not looked at
        line = match.group(1)
        if not line or not _HEADER_LINE.match(line):
            break
        if line[0] in " \t":
            if fields:
                fields[-1][1].append(line)
            continue
        if number == 0 and line.startswith("From "):  # a Unix mbox separator, not a field
            continue
        name, _, value = line.partition(":")
        fields.append((name, [value.lstrip(" \t")]))
    return MessageHeaders(tuple((name, "".join(parts)) for name, parts in fields))


def _decoded(name: str, value: str) -> str:
    """A field's value decoded and stripped; "" when it is too malformed to read (not a reason
    to refuse mail)."""
    try:
        return field_text(name, value).strip()
    except Exception:
        return ""


def header_fields(head: bytes) -> list[bytes]:
    """A header block (CRLF lines) as whole fields (a field with its continuation lines), each ending in CRLF."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if fields and line[:1] in (b" ", b"\t"):
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields


def field_name(field: bytes) -> str:
    """A field's name in lower case ("" for a line that is no field)."""
    match = _FIELD_NAME.match(field)
    return match.group(1).decode().lower() if match else ""


def with_return_path(raw: bytes, mail_from: str) -> bytes:
    """The message as final delivery stores it (RFC 5321 section 4.4): the envelope sender in a
    Return-Path field at the top (``<>`` for the null sender), in place of any the message came with."""
    end = raw.find(b"\r\n\r\n")
    if end >= 0 and b"return-path:" in raw[:end].lower():
        raw = b"".join(f for f in header_fields(raw[:end]) if field_name(f) != "return-path") + raw[end + 2:]
    return f"Return-Path: <{mail_from}>\r\n".encode() + raw
