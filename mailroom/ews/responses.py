"""Response objects in CreateItem. ReplyToItem, ReplyAllToItem and ForwardItem become a new
message composed from the item they refer to, the way Exchange and Outlook compose one: the
recipients worked out from the original, a RE:/FW: subject, the new text above a header block
and the quoted original, threaded by Message-ID. Meeting responses are in meetings.py; the others
(sharing invitations, read receipts, post replies) are not supported yet."""

from __future__ import annotations

import contextlib
import html
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lxml import etree
from lxml import html as lxml_html

from mailroom.content import recipients
from mailroom.content.body import html_to_text, text_to_html
from mailroom.content.properties import derive_properties
from mailroom.store import errors as store_errors
from mailroom.store.model import (
    Attachment,
    Body,
    ExtendedValue,
    Item,
    ItemChanges,
    Mailbox,
    NewItem,
    extended_key,
    utcnow,
)

from .context import Context
from .dates import parse_utc
from .errors import EWSError, SOAPFault
from .items import convert, parse_body
from .schema import schema
from .xml import local

if TYPE_CHECKING:
    from .service import Operation

# Every response object NonEmptyArrayOfResponseObjectsType names.
RESPONSE_OBJECTS = frozenset({
    "AcceptItem", "TentativelyAcceptItem", "DeclineItem", "ReplyToItem", "ForwardItem", "ReplyAllToItem",
    "CancelCalendarItem", "RemoveItem", "SuppressReadReceipt", "PostReplyItem", "AcceptSharingInvitation",
    "AddItemToMyCalendar", "ProposeNewTime",
})
# The message properties a smart response may carry (SmartResponseBaseType); they go on the new message.
_FIELDS = frozenset({"Subject", "ToRecipients", "CcRecipients", "BccRecipients", "IsReadReceiptRequested",
                     "IsDeliveryReceiptRequested", "From"})
_ROLES = ("ToRecipients", "CcRecipients", "BccRecipients")
_DIVIDER = "________________________________"
_HTML = ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
         "<body>{}</body></html>")
_LAST_VERB = extended_key(tag=0x1081)  # PR_LAST_VERB_EXECUTED
_LAST_VERB_TIME = extended_key(tag=0x1082)  # PR_LAST_VERB_EXECUTION_TIME


@dataclass(frozen=True, slots=True)
class Smart:
    """What one kind of smart response does: its subject prefix (and the prefixes that already
    mean the same), whom it answers, and the verb Exchange records on the original."""

    prefix: str
    same: tuple[str, ...]
    answers: str  # "sender", "all" or "" (a forward goes only where the client says)
    verb: int
    icon: str


_SMART = {
    "ReplyToItem": Smart("RE", ("re",), "sender", 102, "MailReplied"),
    "ReplyAllToItem": Smart("RE", ("re",), "all", 103, "MailReplied"),
    "ForwardItem": Smart("FW", ("fw", "fwd"), "", 104, "MailForwarded"),
}


@dataclass(slots=True)
class Response:
    """A composed reply or forward and the item it answers."""

    new: NewItem
    mailbox: Mailbox
    original: Item
    smart: Smart


def smart_response(kind: str) -> Smart | None:
    """The smart response an Items child is; None for an item. Other response objects are a
    per-item ErrorInvalidOperation, so the rest of the batch still runs."""
    if kind not in RESPONSE_OBJECTS:
        return None
    smart = _SMART.get(kind)
    if smart is None:
        raise EWSError("ErrorInvalidOperation", f"{kind} is not supported yet.")
    return smart


def compose(op: Operation, node: etree._Element, smart: Smart) -> Response:
    """The new message a ReplyToItem / ReplyAllToItem / ForwardItem element asks for."""
    given, bodies, reference = _read(node, op.ctx)
    if reference is None:
        raise EWSError("ErrorMissingInformationReferenceItemId", "The response object needs a ReferenceItemId.")
    mailbox, original = op.item_from(reference)
    props = {"ItemClass": "IPM.Note", **{k: v for k, v in given.items() if k not in _ROLES}}
    props.update(_recipients(smart, original, mailbox, given))
    props.setdefault("Subject", _subject(smart, original.props.get("Subject") or ""))
    message_id = original.props.get("InternetMessageId")
    if message_id:
        props["References"] = " ".join(filter(None, (original.props.get("References"), message_id)))
        if smart.answers:
            props["InReplyTo"] = message_id
    derive_properties(props)
    props["ConversationTopic"] = original.props.get("ConversationTopic") or props["ConversationTopic"]
    body = _body(op.ctx, original, bodies.get("NewBodyContent"), bodies.get("Body"))
    return Response(NewItem(props=props, body=body, attachments=_attachments(op.ctx, mailbox, original, smart, body)),
                    mailbox, original, smart)


def record(ctx: Context, response: Response) -> None:
    """Mark the original as replied to or forwarded, where Exchange records it."""
    changes = ItemChanges(set_props={"IconIndex": response.smart.icon}, keep_mime=True, set_extended=[
        ExtendedValue(_LAST_VERB, "Integer", str(response.smart.verb)),
        ExtendedValue(_LAST_VERB_TIME, "SystemTime", utcnow())])
    with contextlib.suppress(store_errors.NotFound):  # the original went away meanwhile; the reply stands
        ctx.store.items.update(response.mailbox, response.original.id, changes)


# -- the request --------------------------------------------------------------------------------
def _read(node: etree._Element, ctx: Context) -> tuple[dict[str, Any], dict[str, Body], etree._Element | None]:
    """The message properties, the bodies and the ReferenceItemId a smart response element carries."""
    given: dict[str, Any] = {}
    bodies: dict[str, Body] = {}
    reference = None
    for child in node:
        name = local(child.tag)
        if name in ("Body", "NewBodyContent"):
            bodies[name] = parse_body(child)
        elif name == "ReferenceItemId":
            reference = child
        elif name in _FIELDS:
            given[name] = convert(schema().element("MessageType", name), child, ctx)
        elif name != "IsSpecificMessageReply":
            raise SOAPFault("ErrorSchemaValidation", f"{name} is not a property of {local(node.tag)}.")
    return given, bodies, reference


# -- recipients and subject ---------------------------------------------------------------------
def _recipients(smart: Smart, original: Item, mailbox: Mailbox, given: dict[str, Any]) -> dict[str, str]:
    """To, Cc and Bcc: whom the response answers, then the ones the client adds; each address once."""
    p = original.props
    roles = {role: recipients.parse(given.get(role)) for role in _ROLES}
    if smart.answers:
        sender = (recipients.parse(p.get("ReplyTo")) or recipients.parse(p.get("From"))
                  or recipients.parse(p.get("Sender")))
        others = {"ToRecipients": [], "CcRecipients": []}
        if smart.answers == "all":
            me = {a.lower() for a in (mailbox.address, *mailbox.aliases)}
            others = {role: [a for a in recipients.parse(p.get(role)) if (a.email or "").lower() not in me]
                      for role in others}
        roles["ToRecipients"] = sender + others["ToRecipients"] + roles["ToRecipients"]
        roles["CcRecipients"] = others["CcRecipients"] + roles["CcRecipients"]
    seen: set[str] = set()
    found = {}
    for role in _ROLES:
        unique = []
        for address in roles[role]:
            key = (address.email or address.name or "").lower()
            if key not in seen:
                seen.add(key)
                unique.append(address)
        if unique:
            found[role] = recipients.build(role, unique)
    return found


def _subject(smart: Smart, original: str) -> str:
    """``RE: <subject>`` / ``FW: <subject>``, not doubled when the subject already starts so."""
    head, sep, _ = original.partition(":")
    if sep and head.strip().lower() in smart.same:
        return original
    return f"{smart.prefix}: {original}"


# -- body and attachments -----------------------------------------------------------------------
def _body(ctx: Context, original: Item, new: Body | None, replacing: Body | None) -> Body:
    """NewBodyContent, then the client's Body if it sent one, else the header block and the
    original's body; in the format of what is quoted (the original's, as Exchange answers)."""
    quoted = replacing or original.body
    body_type = (quoted or new or Body("Text", "")).body_type
    lines = _header(ctx, original)
    if body_type == "HTML":
        rest = _html_inner(replacing) if replacing else _html_quote(lines, original.body)
        return Body("HTML", _HTML.format((_html_inner(new) if new else "") + rest))
    rest = _as_text(replacing) if replacing else _text_quote(lines, original.body)
    return Body("Text", (_as_text(new) if new else "") + rest)


def _header(ctx: Context, original: Item) -> list[tuple[str, str]]:
    """The From / Sent / To / Cc / Subject lines above the quoted original."""
    p = original.props
    lines = [("From", _people(p.get("From") or p.get("Sender")))]
    if p.get("DateTimeSent"):
        sent = parse_utc(p["DateTimeSent"]).astimezone(ctx.tz)
        lines.append(("Sent", f"{sent:%A, %B} {sent.day}, {sent.year} {sent.hour % 12 or 12}:{sent:%M %p}"))
    lines += [("To", _people(p.get("ToRecipients"))), ("Cc", _people(p.get("CcRecipients")))]
    lines.append(("Subject", p.get("Subject") or ""))
    return [(name, value) for name, value in lines if value or name in ("From", "Subject")]


def _people(value: str | None) -> str:
    return "; ".join(f"{a.name} <{a.email}>" if a.name and a.email else a.display() for a in recipients.parse(value))


def _text_quote(lines: list[tuple[str, str]], original: Body | None) -> str:
    header = "\n".join(f"{name}: {value}" for name, value in lines)
    return f"\n\n{_DIVIDER}\n{header}\n\n{_as_text(original) if original else ''}"


def _html_quote(lines: list[tuple[str, str]], original: Body | None) -> str:
    header = "<br>".join(f"<b>{name}:</b> {html.escape(value)}" for name, value in lines)
    return ('<hr style="display:inline-block;width:98%" tabindex="-1">'
            '<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt" '
            f'color="#000000">{header}</font><div>&nbsp;</div></div>'
            f"{_html_inner(original) if original else ''}")


def _as_text(body: Body) -> str:
    return body.text if body.body_type == "Text" else html_to_text(body.text)


def _html_inner(body: Body) -> str:
    """What goes inside the new message's <body> for ``body``: an HTML body's own body content."""
    markup = body.text if body.body_type == "HTML" else text_to_html(body.text)
    if not markup.strip():
        return ""
    try:
        doc = lxml_html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return html.escape(markup)
    inner = doc.find("body")
    if inner is None:
        return ""
    return html.escape(inner.text or "") + "".join(lxml_html.tostring(c, encoding="unicode") for c in inner)


def _attachments(ctx: Context, mailbox: Mailbox, original: Item, smart: Smart, body: Body) -> list[Attachment]:
    """A forward carries the original's attachments; a reply only the images its quoted HTML shows."""
    if not original.attachments or (smart.answers and body.body_type != "HTML"):
        return []
    found = ctx.store.items.attachments(mailbox, original.id)
    return [replace(a, id=None, item_id=None) for a in found if not smart.answers or a.is_inline]
