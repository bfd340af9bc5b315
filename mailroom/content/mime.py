"""MIME (RFC 5322/2045) to item properties and back.

A message that arrives as MIME keeps its original bytes for MimeContent; its properties, body and
attachments are read from it, and an attached message (message/rfc822) becomes an item
attachment. An item created from properties gets MIME generated on demand. The email package
does the parsing and the encoding (RFC 2047 headers, RFC 2231 file names, transfer encodings).
"""

from __future__ import annotations

import contextlib
import email
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import headerregistry
from email.message import EmailMessage, Message
from typing import Any

from mailroom.store.model import Attachment, Body, NewItem

from . import recipients, snapshot
from .body import html_to_text
from .recipients import Address
from .snapshot import clean
from .xmltext import escape, escape_attribute, root

T = recipients.T
_PRIORITY = {"1": "High", "2": "High", "3": "Normal", "4": "Low", "5": "Low"}
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+")  # RFC 2045 type and subtype names
# Writes headers that came from bytes as they came (an attached message keeps them), not refolded.
_AS_RECEIVED = email.policy.SMTP.clone(refold_source="none")
_MAX_DEPTH = 8  # attached messages nested deeper than this stay file attachments
_MAX_PARTS_DEPTH = 64  # multipart nesting followed when looking for attachments
# What the email package raises on headers or parameters it cannot make sense of.
_UNREADABLE = (ValueError, IndexError, TypeError, AttributeError, LookupError)
# How mail clients really mean these labels (the WHATWG encoding rules).
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                    "ascii": "cp1252"}
# Header text decoded as Latin-1 holds C1 controls where the sender meant Windows-1252.
_C1 = {i: bytes([i]).decode("cp1252", "replace") for i in range(0x80, 0xA0)}
_LINE_BREAK = re.compile(r"\r|\n")  # as the email package unfolds
_PLAIN = re.compile(r"[^\"()\\]*")  # nothing a structured field's parser would treat specially
_PLAIN_KINDS = (headerregistry.UnstructuredHeader, headerregistry.DateHeader)  # a Date reads as written: same date
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 atext, as a regex (also for SMTP paths)
_ADDR_SPEC = rf"{ATOM}(?:\.{ATOM})*@{ATOM}(?:\.{ATOM})*"
_MSG_ID = re.compile(rf"<{_ADDR_SPEC}>")
_MAILBOX = rf"[ \t]*(?:(?:{ATOM}[ \t]+)*(?:{ATOM}[ \t]*)?<{_ADDR_SPEC}>|{_ADDR_SPEC})[ \t]*"
_ADDRESS_LIST = re.compile(rf"{_MAILBOX}(?:,{_MAILBOX})*")
# One mailbox of such a list: its display name's words (group 1) and address (2), or a bare address (3).
_LISTED_MAILBOX = re.compile(
    rf"[ \t]*(?:((?:{ATOM}[ \t]+)*(?:{ATOM}[ \t]*)?)<({_ADDR_SPEC})>|({_ADDR_SPEC}))[ \t]*(?:,|$)")
_NOT_ONE_PART = ("multipart", "message")  # content types the feed parser takes apart
_ADDRESS_HEADERS = (("From", "From", True), ("Sender", "Sender", True), ("To", "ToRecipients", False),
                    ("Cc", "CcRecipients", False), ("Bcc", "BccRecipients", False), ("Reply-To", "ReplyTo", False))


class _HeaderClasses(headerregistry.HeaderRegistry):
    """The email package's header registry, making each header class once (the stock one builds a
    new class at every header access) and remembering the header objects it made lately: reading
    one message asks for its Content-Type about eight times, and most messages have the same one.
    Header objects are immutable, so one can serve every thread."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type] = {}
        self._parsed: dict[tuple[str, str], Any] = {}

    def __getitem__(self, name: str) -> type:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = super().__getitem__(name)
        return made

    def __call__(self, name: str, value: str) -> Any:
        key = (name, value)
        found = self._parsed.get(key)
        if found is None:
            if len(self._parsed) >= _REMEMBERED_HEADERS:
                self._parsed.clear()
            found = self._parsed[key] = super().__call__(name, value)
        return found


_READING = email.policy.default.clone(header_factory=_HeaderClasses())  # policy.default, faster
_PARSER = email.parser.BytesParser(policy=_READING)
_REMEMBERED_HEADERS = 2000


def field_text(name: str, value: str) -> str:
    """A header field's value (as the message holds it: 8-bit text as surrogate escapes) as the
    email package's default policy reads it: unfolded, encoded words and 8-bit text decoded.
    Without making the header object when plain text reads the same either way: ASCII without
    encoded words, for an address field a plain list of ``[name] <local@domain>``, for a
    Message-ID one ``<local@domain>`` (a Date is then left as written: the same date). Raises
    what the email package raises on a value it cannot read."""
    unfolded = "".join(_LINE_BREAK.split(value))
    if unfolded.isascii() and "=?" not in unfolded:
        kind = _READING.header_factory[name]
        if issubclass(kind, headerregistry.AddressHeader):
            if _ADDRESS_LIST.fullmatch(unfolded):
                return unfolded
        elif issubclass(kind, headerregistry.MessageIDHeader):
            if _MSG_ID.fullmatch(unfolded):
                return unfolded
        elif issubclass(kind, _PLAIN_KINDS) and _PLAIN.fullmatch(unfolded):
            return unfolded
    return str(_READING.header_fetch_parse(name, value))


@dataclass
class ParsedMessage:
    props: dict[str, Any] = field(default_factory=dict)
    body: Body | None = None
    attachments: list[Attachment] = field(default_factory=list)
    message: Message | None = None  # what the email package made of it (its headers at least), for more reading


# -- reading ------------------------------------------------------------------------------------
def parse_message(raw: bytes, depth: int = 0) -> ParsedMessage:
    """Properties, body and attachments of a MIME message. Never raises on odd input: what cannot
    be read is left out, as a mail store must accept whatever arrives."""
    try:
        msg = _read(raw)
        body_part = _body_part(msg)
        return ParsedMessage(_props(msg), _body(body_part), _attachments(msg, body_part, depth), msg)
    except (RecursionError, *_UNREADABLE):  # a structure the email package cannot take apart
        try:
            headers = _PARSER.parsebytes(raw, headersonly=True)
            return ParsedMessage(_props(headers), message=headers)
        except (RecursionError, *_UNREADABLE):
            return ParsedMessage({"ItemClass": "IPM.Note"})


def _read(raw: bytes) -> Message:
    """What the email package makes of ``raw``. A message of one part has its header block parsed
    and its body set as one piece, which is what the feed parser makes of it line by line (most
    mail is one text part; this is about half the parse). The full parse whenever the header block
    did not end where the first empty line is (a line that is no header ends it earlier)."""
    end = raw.find(b"\r\n\r\n")
    end = end + 4 if end >= 0 else raw.find(b"\n\n") + 2
    if end > 1:
        msg = _PARSER.parsebytes(raw[:end], headersonly=True)
        if not msg.defects and msg.get_payload() == "" and msg.get_content_maintype() not in _NOT_ONE_PART:
            msg.set_payload(raw[end:].decode("ascii", "surrogateescape"))  # as BytesParser decodes
            return msg
    return _PARSER.parsebytes(raw)


def _fields(msg: Message) -> dict[str, str]:
    """The first raw value of each header, by lower-case name: one pass for the many lookups."""
    fields: dict[str, str] = {}
    for name, value in msg.raw_items():
        fields.setdefault(name.lower(), value)
    return fields


def _header(fields: dict[str, str], name: str) -> str | None:
    """A header's decoded value (from ``_fields``), or its raw text when the email package cannot parse it."""
    text = fields.get(name.lower())
    if text is None:
        return None
    with contextlib.suppress(*_UNREADABLE):
        text = field_text(name, text)
    return _text(text)


def _text(value: str) -> str:
    """Header text as characters: raw 8-bit bytes are read as UTF-8 (RFC 6532), folding undone."""
    if value.isascii() and value.isprintable():  # the common case: nothing to read or undo
        return value
    text = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return clean(" ".join(text.splitlines()).translate(_C1))


def _addresses(text: str | None) -> list[Address]:
    """The mailboxes of an address field's value: a plain list (``_ADDRESS_LIST``: display names
    of atoms, no comments, quotes or groups) split here as ``getaddresses`` would, anything else by it."""
    if not text:
        return []
    if _ADDRESS_LIST.fullmatch(text):
        return [Address(" ".join(name.split()) or None, addr) if addr else Address(None, bare)
                for name, addr, bare in _LISTED_MAILBOX.findall(text)]
    return [Address(name or None, addr or None) for name, addr in email.utils.getaddresses([text]) if name or addr]


def _props(msg: Message) -> dict[str, Any]:
    props: dict[str, Any] = {"ItemClass": "IPM.Note"}
    fields = _fields(msg)
    subject = _header(fields, "Subject")
    if subject is not None:
        props["Subject"] = subject
    for header, element, single in _ADDRESS_HEADERS:
        found = _addresses(_header(fields, header))
        if found:
            props[element] = recipients.build(element, found, single)
    for header, element in (("Message-ID", "InternetMessageId"), ("In-Reply-To", "InReplyTo"),
                            ("References", "References"), ("Thread-Topic", "ConversationTopic")):
        value = " ".join((_header(fields, header) or "").split())
        if value and (element != "InternetMessageId" or len(value) <= 998):  # RFC 5322 line limit
            props[element] = value
    sent = _date(_header(fields, "Date"))
    if sent:
        props["DateTimeSent"] = sent
    importance = (_header(fields, "Importance") or "").strip().capitalize()
    priority = (_header(fields, "X-Priority") or "").strip()
    if importance in ("Low", "Normal", "High"):
        props["Importance"] = importance
    elif priority:
        props["Importance"] = _PRIORITY.get(priority[:1], "Normal")
    if _header(fields, "Disposition-Notification-To"):
        props["IsReadReceiptRequested"] = True
    if msg.keys():
        props["InternetMessageHeaders"] = _headers_xml(msg)
    return props


def _date(text: str | None) -> str | None:
    if not text:
        return None
    try:
        sent = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    sent = sent.astimezone(UTC)
    return sent.strftime("%Y-%m-%dT%H:%M:%SZ") if sent.year >= 1601 else None  # Exchange starts at 1601


def _headers_xml(msg: Message) -> str:
    """InternetMessageHeaders: every header with its value as it arrived (unfolded), as lxml
    would serialise the element (written as text: it is made for every delivered message)."""
    return root("InternetMessageHeaders", "t", T, [
        f'<t:InternetMessageHeader HeaderName="{escape_attribute(_text(name))}">{escape(_text(value).strip())}'
        "</t:InternetMessageHeader>" for name, value in msg.raw_items()])


def _body_part(msg: Message) -> Message | None:
    try:
        return msg.get_body(preferencelist=("html", "plain")) if isinstance(msg, EmailMessage) else None
    except _UNREADABLE:
        return None


def _body(part: Message | None) -> Body | None:
    if part is None:
        return None
    return Body("HTML" if part.get_content_subtype() == "html" else "Text", clean(_decoded_text(part)))


def _decoded_text(part: Message) -> str:
    """A text part's content in its declared charset; undeclared or unknown ones are tried as
    UTF-8 and else read as Windows-1252, which never fails."""
    data = part.get_payload(decode=True) or b""
    try:
        charset = (part.get_content_charset() or "us-ascii").lower()
    except _UNREADABLE:
        charset = "us-ascii"
    if charset in _CHARSET_ALIASES:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode(_CHARSET_ALIASES[charset], "replace")
    try:
        return data.decode(charset, "replace")
    except (LookupError, ValueError):  # an unknown charset, or a name no codec could have
        return data.decode("utf-8", "replace")


def _attachments(msg: Message, body_part: Message | None, depth: int) -> list[Attachment]:
    found = []
    for part in _leaves(msg, 0):
        try:
            att = _attachment(part, depth) if part is not body_part else None
        except _UNREADABLE:
            continue  # a part that cannot be read is left out; the others still count
        if att is not None:
            found.append(att)
    return found


def _leaves(part: Message, level: int) -> Iterator[Message]:
    """The parts that are not containers; an attached message counts as one part."""
    try:
        payload = part.get_payload()
    except _UNREADABLE:
        return
    if part.get_content_maintype() != "multipart" or not isinstance(payload, list):
        yield part
    elif level < _MAX_PARTS_DEPTH:
        for child in payload:
            yield from _leaves(child, level + 1)


def _attachment(part: Message, depth: int) -> Attachment | None:
    try:
        disposition = part.get_content_disposition()
        filename = part.get_filename()
    except _UNREADABLE:
        disposition, filename = "attachment", None
    name = _text(filename) if filename else None
    inner = part.get_payload()
    if part.get_content_type() == "message/rfc822" and isinstance(inner, list) and inner:
        raw = inner[0].as_bytes(policy=_AS_RECEIVED)
        if depth < _MAX_DEPTH:
            return _item_attachment(raw, name, depth)
        return Attachment(kind="file", name=name or "message.eml", content_type="message/rfc822", content=raw)
    if disposition is None and name is None and part.get_content_maintype() == "text":
        return None  # an alternative of the body, not an attachment
    fields = _fields(part)
    content_id = (_header(fields, "Content-ID") or "").strip("<> ") or None
    return Attachment(
        kind="file", name=name or "attachment", content_type=_text(part.get_content_type()), content_id=content_id,
        content_location=_header(fields, "Content-Location"),
        is_inline=disposition == "inline" or (disposition is None and content_id is not None),
        content=part.get_payload(decode=True) or b"")


def _item_attachment(raw: bytes, name: str | None, depth: int) -> Attachment:
    inner = parse_message(raw, depth + 1)
    item = NewItem(props=inner.props, body=inner.body, mime=raw, attachments=inner.attachments)
    return Attachment(kind="item", name=name or inner.props.get("Subject") or "Attached message",
                      content_type="message/rfc822", content=snapshot.dump(item))


# -- writing ------------------------------------------------------------------------------------
def build_message(props: dict[str, Any], body: Body | None, attachments: list[Attachment]) -> bytes:
    """MIME for an item that has none stored (created from properties): multipart/alternative for
    an HTML body, related for its inline images, mixed with the attachments."""
    msg = EmailMessage(policy=email.policy.SMTP)
    for header, value in _headers(props):
        try:
            msg[header] = value
        except _UNREADABLE:
            continue  # a value no header can carry (a stored Message-ID that is not one, say)
    html = body is not None and body.body_type == "HTML"
    related = [a for a in attachments if html and a.kind == "file" and a.is_inline and a.content_id]
    if body is not None and html:
        msg.set_content(html_to_text(body.text), cte="quoted-printable")
        msg.add_alternative(body.text, subtype="html", cte="quoted-printable")
        for att in related:
            _add(msg.get_body(preferencelist=("html",)).add_related, att)  # type: ignore[union-attr]
    else:
        msg.set_content(body.text if body else "", cte="quoted-printable")
    for att in attachments:
        if all(att is not r for r in related):
            _add(msg.add_attachment, att)
    for part in msg.iter_parts():
        _drop_mime_version(part)
    return msg.as_bytes(policy=_AS_RECEIVED)


def _drop_mime_version(part: Message) -> None:
    """MIME-Version belongs on the message only; the email package stamps it on every part it makes."""
    del part["MIME-Version"]
    if part.get_content_maintype() == "multipart":
        for child in part.get_payload():
            _drop_mime_version(child)


def _headers(props: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for header, element, _ in _ADDRESS_HEADERS:
        found = recipients.parse(props.get(element)) if header != "Bcc" else []
        if found:
            yield header, ", ".join(_mailbox(a) for a in found)
    if props.get("Subject") is not None:
        yield "Subject", _line(props["Subject"])
    if props.get("ConversationTopic"):
        yield "Thread-Topic", _line(props["ConversationTopic"])  # how Exchange keeps a conversation together
    sent = props.get("DateTimeSent") or props.get("DateTimeCreated")
    if sent:
        yield "Date", email.utils.format_datetime(datetime.strptime(sent, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    for element, header in (("InternetMessageId", "Message-ID"), ("InReplyTo", "In-Reply-To"),
                            ("References", "References")):
        if props.get(element) and props[element].isascii():  # message ids are ASCII; others cannot be sent
            yield header, _line(props[element])
    if props.get("Importance") in ("Low", "High"):
        yield "Importance", props["Importance"]
        yield "X-Priority", "5" if props["Importance"] == "Low" else "1"


def _mailbox(address: Address) -> str:
    """One mailbox of an address header; the email package encodes a non-ASCII name (RFC 2047)."""
    spec = f"<{_line(address.email or '')}>"
    return f'"{email.utils.quote(_line(address.name))}" {spec}' if address.name else spec


def _line(text: str) -> str:
    """One header line's worth of ``text``: line breaks would end the header."""
    return " ".join(text.splitlines())


def _add(add: Any, att: Attachment) -> None:
    """Add ``att`` with ``add`` (add_attachment or add_related): an item attachment as the
    message/rfc822 of its item, a file with its own type."""
    options = {"filename": _line(att.name or "attachment"), "disposition": "inline" if att.is_inline else "attachment"}
    if att.content_id:
        options["cid"] = f"<{_line(att.content_id)}>"
    if att.kind == "item":
        item = snapshot.load(att.content)
        raw = item.mime if item.mime is not None else build_message(item.props, item.body, item.attachments)
        add(email.message_from_bytes(raw, policy=_AS_RECEIVED), **options)
        return
    maintype, _, subtype = (att.content_type or "").partition("/")
    if not (_TOKEN.fullmatch(maintype) and _TOKEN.fullmatch(subtype)) or maintype.lower() in ("multipart", "message"):
        maintype, subtype = "application", "octet-stream"
    add(att.content, maintype=maintype, subtype=subtype, **options)
