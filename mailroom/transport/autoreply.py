"""Automatic replies (Out of Office) for local delivery, by the rules of RFC 3834: one reply per
sender per OOF period, never to automatic or list mail, never to an empty or system sender.
The reply goes to the envelope sender (the Return-Path) where the message came with an
envelope, else to its Return-Path or From header. It is handed back to the transport, which
sends it like any other message, from the null sender <> (RFC 3834 section 3.3), so a reply
that cannot be delivered makes no non-delivery report."""

from __future__ import annotations

import email.policy
import email.utils
import logging
from datetime import UTC, datetime
from email.message import EmailMessage, Message

from mailroom.content import oof
from mailroom.content.body import html_to_text
from mailroom.content.mime import ParsedMessage
from mailroom.store import Store
from mailroom.store.model import Mailbox

from .envelope import Recipient, Submission

log = logging.getLogger(__name__)

_SYSTEM_SENDERS = ("postmaster", "mailer-daemon")
_LIST_HEADERS = ("List-Id", "List-Unsubscribe")
_BULK = ("bulk", "list", "junk")


def respond(store: Store, mailbox: Mailbox, parsed: ParsedMessage, mail_from: str | None) -> Submission | None:
    """The automatic reply to a message just delivered to ``mailbox`` (from the envelope sender
    ``mail_from``; None: no envelope) if its OOF is on and the message deserves one. Asked for
    every delivered message, so the settings come from a cache (``claim_reply``, which records
    the answer, reads them afresh)."""
    settings = oof.load_cached(store, mailbox)
    if not settings.active(datetime.now(UTC)):
        return None
    headers = parsed.message
    if headers is None:
        return None
    sender = _sender(headers, mail_from)
    if sender is None or sender == mailbox.address.lower() or sender in mailbox.aliases or _automatic(headers):
        return None
    if oof.reply_to(store, mailbox, settings, sender) is None:
        return None
    claimed = oof.claim_reply(store, mailbox, sender, datetime.now(UTC))
    text = oof.reply_to(store, mailbox, claimed, sender) if claimed is not None else None
    if text is None:
        return None
    log.info("automatic reply from %s to %s", mailbox.address, sender)
    reply = _reply(mailbox, sender, headers, text)
    return Submission(mail_from="", recipients=(Recipient(sender),), raw=reply.as_bytes(), source="STOREDRIVER",
                      connector="autoreply", submitter=mailbox.address)


def _sender(headers: Message, mail_from: str | None) -> str | None:
    """Where RFC 3834 sends a response: the envelope sender (its Return-Path), else the Return-Path
    or From header; None for the null sender or a system sender."""
    value = mail_from if mail_from is not None else headers.get("Return-Path") or headers.get("From") or ""
    address = email.utils.parseaddr(str(value))[1].strip().lower()
    if "@" not in address or address.split("@", 1)[0] in _SYSTEM_SENDERS:
        return None
    return address


def _automatic(headers: Message) -> bool:
    """Mail no automatic reply goes to: auto-submitted, bulk or list traffic."""
    submitted = str(headers.get("Auto-Submitted", "no")).split(";", 1)[0].strip().lower()
    precedence = str(headers.get("Precedence", "")).strip().lower()
    return submitted != "no" or precedence in _BULK or any(h in headers for h in _LIST_HEADERS)


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
