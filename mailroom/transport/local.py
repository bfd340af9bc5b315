"""Delivery into local mailboxes. Idempotent: a message whose Message-ID a mailbox already
holds is recognised and not stored twice (ARCHITECTURE rule 3)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

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
        mailbox = store.directory.lookup(address)
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
