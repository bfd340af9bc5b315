"""Delivery into local mailboxes. Idempotent: a message whose Message-ID a mailbox already
holds is recognised and not stored twice (ARCHITECTURE rule 3)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import logging
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from mailroom.content import mime, recipients
from mailroom.content.properties import derive_properties
from mailroom.content.recipients import Address
from mailroom.store import Store
from mailroom.store.model import NewItem, utcnow

from . import autoreply

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    not_local: list[str] = field(default_factory=list)


def deliver_local(store: Store, raw: bytes, rcpts: list[str], item_class: str = "IPM.Note") -> DeliveryResult:
    """Store ``raw`` in the Inbox of every recipient that is a local mailbox (or alias)."""
    result = DeliveryResult()
    parsed = mime.parse_message(raw)
    message_id = parsed.props.get("InternetMessageId")
    seen: set[int] = set()
    for address in rcpts:
        mailbox = store.directory.mailbox_by_address(address)
        if mailbox is None:
            result.not_local.append(address)
            continue
        if mailbox.id in seen:
            continue
        seen.add(mailbox.id)
        if message_id and store.items.find_by_message_id(mailbox, message_id):
            result.duplicates.append(mailbox.address)
            continue
        inbox = store.folders.distinguished(mailbox, "inbox")
        props = dict(parsed.props)
        props.update(ItemClass=item_class, IsRead=False, IsDraft=False, DateTimeReceived=utcnow(),
                     ReceivedBy=recipients.build("ReceivedBy", [Address(mailbox.display_name, mailbox.address)], True))
        derive_properties(props)
        store.items.create(mailbox, inbox.id, NewItem(props=props, body=parsed.body, mime=raw,
                                                      attachments=list(parsed.attachments)))
        result.delivered.append(mailbox.address)
        try:
            autoreply.respond(store, mailbox, raw)
        except Exception:  # the message is stored; a failed automatic reply must not undo that
            log.exception("automatic reply for %s failed", mailbox.address)
    return result


def report_undeliverable(store: Store, sender_address: str, raw: bytes, failed: list[str], reason: str) -> None:
    """Tell the sender, with a non-delivery report (RFC 3464) in their Inbox, which recipients
    the message could not reach — a message is never dropped silently."""
    if not failed:
        return
    original = email.message_from_bytes(raw, policy=email.policy.default)
    report = EmailMessage(policy=email.policy.SMTP)
    domain = sender_address.split("@", 1)[1]
    report["From"] = f"Mail Delivery System <postmaster@{domain}>"
    report["To"] = sender_address
    report["Subject"] = f"Undeliverable: {original.get('Subject', '')}"
    report["Date"] = email.utils.formatdate(localtime=False)
    report["Message-ID"] = email.utils.make_msgid(domain=domain)
    report["Auto-Submitted"] = "auto-replied"
    report.set_content("Your message could not be delivered to these recipients:\n\n"
                       + "\n".join(f"  {a}: {reason}" for a in failed) + "\n")
    status = Message()
    status["Content-Type"] = "message/delivery-status"
    # The generator writes a delivery-status body as a list of header blocks (RFC 3464 section 2).
    status.set_payload([email.message_from_string(f"Reporting-MTA: dns; {domain}\n\n")] + [
        email.message_from_string(f"Final-Recipient: rfc822; {a}\nAction: failed\nStatus: 5.4.1\n"
                                  f"Diagnostic-Code: smtp; 550 5.4.1 {reason}\n\n") for a in failed])
    report.make_mixed()
    report.attach(status)
    headers = b"".join(f"{k}: {v}\r\n".encode("utf-8", "replace") for k, v in original.items())
    report.add_attachment(headers, maintype="text", subtype="rfc822-headers", disposition="inline")
    report.replace_header("Content-Type", report.get_content_type().replace("mixed", "report"))
    report.set_param("report-type", "delivery-status")
    result = deliver_local(store, report.as_bytes(), [sender_address], item_class="REPORT.IPM.Note.NDR")
    log.info("non-delivery report to %s for %s", result.delivered, ", ".join(failed))
