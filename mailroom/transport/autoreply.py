"""Automatic replies (Out of Office) for local delivery, by the rules of RFC 3834: one reply per
sender per OOF period, never to automatic or list mail, never to an empty or system sender.
The reply goes through local delivery; a sender elsewhere gets nothing until the SMTP transport
carries it (and no non-delivery report is made for an automatic reply)."""

from __future__ import annotations

import email.policy
import email.utils
import logging
from datetime import UTC, datetime
from email.message import EmailMessage, Message

from mailroom.content import oof
from mailroom.content.body import html_to_text
from mailroom.content.mime import ParsedMessage
from mailroom.content.recipients import holds_address
from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.store.query import Page

from . import local

log = logging.getLogger(__name__)

_SYSTEM_SENDERS = ("postmaster", "mailer-daemon")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe")
_BULK = ("bulk", "list", "junk")


def respond(store: Store, mailbox: Mailbox, parsed: ParsedMessage) -> None:
    """Answer a message just delivered to ``mailbox`` if its OOF is on and the message deserves it.
    Asked for every delivered message, so the settings come from a cache (``claim_reply``, which
    records the answer, reads them afresh)."""
    settings = oof.load_cached(store, mailbox)
    if not settings.active(datetime.now(UTC)):
        return
    headers = parsed.message
    if headers is None:
        return
    sender = _sender(headers)
    if sender is None or sender == mailbox.address.lower() or sender in mailbox.aliases or _automatic(headers):
        return
    internal = store.directory.accepts(sender.rpartition("@")[2])
    if not internal and not _may_answer_external(store, mailbox, settings, sender):
        return
    settings = oof.claim_reply(store, mailbox, sender, datetime.now(UTC))
    if settings is None:
        return
    text = settings.internal_reply if internal else settings.external_reply
    reply = _reply(mailbox, sender, headers, text)
    result = local.deliver_local(store, reply.as_bytes(), [sender])
    log.info("automatic reply from %s to %s (delivered locally: %s)", mailbox.address, sender, bool(result.delivered))


def _sender(headers: Message) -> str | None:
    """Where RFC 3834 sends a response: the Return-Path, else From; None for an empty or system sender."""
    value = headers.get("Return-Path") or headers.get("From") or ""
    address = email.utils.parseaddr(str(value))[1].strip().lower()
    if "@" not in address or address.split("@", 1)[0] in _SYSTEM_SENDERS:
        return None
    return address


def _automatic(headers: Message) -> bool:
    """Mail no automatic reply goes to: auto-submitted, bulk or list traffic."""
    submitted = str(headers.get("Auto-Submitted", "no")).split(";", 1)[0].strip().lower()
    precedence = str(headers.get("Precedence", "")).strip().lower()
    return submitted != "no" or precedence in _BULK or any(h in headers for h in _LIST_HEADERS)


def _may_answer_external(store: Store, mailbox: Mailbox, settings: oof.OofSettings, sender: str) -> bool:
    """ExternalAudience All answers everyone, Known only senders in the Contacts folder, None nobody."""
    if settings.external_audience == "All":
        return True
    if settings.external_audience != "Known":
        return False
    contacts = store.folders.distinguished(mailbox, "contacts")
    found, _ = store.items.find(mailbox, contacts.id, where=holds_address(sender), page=Page(0, 1))
    return bool(found)


def _reply(mailbox: Mailbox, sender: str, original: Message, text: str) -> EmailMessage:
    reply = EmailMessage(policy=email.policy.SMTP)
    domain = mailbox.address.split("@", 1)[1]
    reply["From"] = email.utils.formataddr((mailbox.display_name, mailbox.address))
    reply["To"] = sender
    reply["Subject"] = f"Automatic reply: {original.get('Subject', '')}"
    reply["Date"] = email.utils.formatdate(localtime=False)
    reply["Message-ID"] = email.utils.make_msgid(domain=domain)
    reply["Auto-Submitted"] = "auto-replied"
    message_id = original.get("Message-ID")
    if message_id:
        reply["In-Reply-To"] = str(message_id)
        reply["References"] = f"{original.get('References', '')} {message_id}".strip()
    if "<" in text and ">" in text:  # an HTML reply, as Outlook writes them
        reply.set_content(html_to_text(text))
        reply.add_alternative(text, subtype="html")
    else:
        reply.set_content(text)
    return reply
