"""MIME (RFC 5322/2045) to item properties and back.

A message that arrives as MIME keeps its original bytes for MimeContent; its properties,
body and attachments are read from it. An item created from properties gets MIME generated on
demand."""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage, Message
from typing import Any

from lxml import etree

from mailroom.store.model import Attachment, Body

from . import recipients
from .recipients import Address

T = recipients.T
_PRIORITY = {"1": "High", "2": "High", "3": "Normal", "4": "Low", "5": "Low"}


@dataclass
class ParsedMessage:
    props: dict[str, Any] = field(default_factory=dict)
    body: Body | None = None
    attachments: list[Attachment] = field(default_factory=list)


def _addresses(header: Any) -> list[Address]:
    if header is None:
        return []
    found = []
    for name, addr in email.utils.getaddresses([str(header)]):
        if addr or name:
            found.append(Address(name or None, addr or None))
    return found


def _headers_xml(msg: Message) -> str:
    root = etree.Element(f"{{{T}}}InternetMessageHeaders", nsmap={"t": T})
    for name, value in msg.items():
        etree.SubElement(root, f"{{{T}}}InternetMessageHeader", HeaderName=name).text = str(value)
    return etree.tostring(root, encoding="unicode")


def parse_message(raw: bytes) -> ParsedMessage:
    """Properties, body and attachments of a MIME message. Never raises on odd input: what
    cannot be read is left out, as a mail store must accept whatever arrives."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parsed = ParsedMessage()
    props = parsed.props
    props["ItemClass"] = "IPM.Note"
    if msg["Subject"] is not None:
        props["Subject"] = str(msg["Subject"])
    for header, element, single in (("From", "From", True), ("Sender", "Sender", True), ("To", "ToRecipients", False),
                                    ("Cc", "CcRecipients", False), ("Bcc", "BccRecipients", False),
                                    ("Reply-To", "ReplyTo", False)):
        found = _addresses(msg[header])
        if found:
            props[element] = recipients.build(element, found, single)
    if msg["Message-ID"]:
        props["InternetMessageId"] = str(msg["Message-ID"]).strip()
    if msg["In-Reply-To"]:
        props["InReplyTo"] = str(msg["In-Reply-To"]).strip()
    if msg["References"]:
        props["References"] = " ".join(str(msg["References"]).split())
    if msg["Date"]:
        try:
            sent = email.utils.parsedate_to_datetime(str(msg["Date"]))
            if sent.tzinfo is None:
                sent = sent.replace(tzinfo=UTC)
            props["DateTimeSent"] = sent.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            pass
    importance = msg.get("Importance")
    if importance and str(importance).strip().capitalize() in ("Low", "Normal", "High"):
        props["Importance"] = str(importance).strip().capitalize()
    elif msg.get("X-Priority"):
        props["Importance"] = _PRIORITY.get(str(msg["X-Priority"]).strip()[:1], "Normal")
    if msg.get("Disposition-Notification-To"):
        props["IsReadReceiptRequested"] = True
    props["InternetMessageHeaders"] = _headers_xml(msg)
    parsed.body = _body(msg)
    parsed.attachments = _attachments(msg)
    return parsed


def _body(msg: Message) -> Body | None:
    if not isinstance(msg, EmailMessage):
        return None
    try:
        part = msg.get_body(preferencelist=("html", "plain"))
    except (KeyError, LookupError):
        part = None
    if part is None:
        return None
    try:
        text = part.get_content()
    except (LookupError, UnicodeDecodeError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        text = payload.decode("utf-8", "replace")
    return Body("HTML" if part.get_content_subtype() == "html" else "Text", str(text))


def _attachments(msg: Message) -> list[Attachment]:
    if not isinstance(msg, EmailMessage) or not msg.is_multipart():
        return []
    found = []
    body_part = None
    try:
        body_part = msg.get_body(preferencelist=("html", "plain"))
    except (KeyError, LookupError):
        pass
    for part in msg.walk():
        if part.is_multipart() or part is body_part:
            continue
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if disposition is None and filename is None and part.get_content_maintype() == "text":
            continue
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            content = inner[0].as_bytes() if isinstance(inner, list) and inner else bytes(part.get_payload(decode=True) or b"")
        else:
            content = part.get_payload(decode=True) or b""
        content_id = part.get("Content-ID")
        found.append(Attachment(
            kind="file", name=filename or "attachment", content_type=part.get_content_type(),
            content_id=str(content_id).strip("<> ") if content_id else None,
            is_inline=disposition == "inline", content=content, size=len(content)))
    return found


def build_message(props: dict[str, Any], body: Body | None, attachments: list[Attachment]) -> bytes:
    """MIME for an item that has none stored (created from properties)."""
    msg = EmailMessage(policy=email.policy.SMTP)
    for element, header in (("From", "From"), ("Sender", "Sender"), ("ToRecipients", "To"),
                            ("CcRecipients", "Cc"), ("ReplyTo", "Reply-To")):
        found = recipients.parse(props.get(element))
        if found:
            msg[header] = ", ".join(email.utils.formataddr((a.name or "", a.email or "")) for a in found)
    if props.get("Subject") is not None:
        msg["Subject"] = props["Subject"]
    sent = props.get("DateTimeSent") or props.get("DateTimeCreated")
    if sent:
        from datetime import datetime

        msg["Date"] = email.utils.format_datetime(datetime.strptime(sent, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
    if props.get("InternetMessageId"):
        msg["Message-ID"] = props["InternetMessageId"]
    if props.get("InReplyTo"):
        msg["In-Reply-To"] = props["InReplyTo"]
    if props.get("References"):
        msg["References"] = props["References"]
    if props.get("Importance") and props["Importance"] != "Normal":
        msg["Importance"] = props["Importance"]
    text = body.text if body else ""
    if body is not None and body.body_type == "HTML":
        msg.set_content(text, subtype="html", cte="quoted-printable")
    else:
        msg.set_content(text, cte="quoted-printable")
    for att in attachments:
        maintype, _, subtype = (att.content_type or "application/octet-stream").partition("/")
        if maintype == "message" and subtype == "rfc822":
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(att.content, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=att.name or "attachment", cid=f"<{att.content_id}>" if att.content_id else None,
                           disposition="inline" if att.is_inline else "attachment")
    return msg.as_bytes()
