"""Delivery into local mailboxes. Idempotent: a message whose Message-ID a mailbox already
holds is recognised and not stored twice (ARCHITECTURE rule 3).

What delivery itself has to send (an automatic reply, a resource's answer to a meeting request)
is not delivered here but returned in ``DeliveryResult.outgoing``, for the transport to submit
like any other message: it reaches senders on other servers, is tracked and seen by the agents.

Several messages can be delivered in one store transaction (``deliver_batch``): one commit, one
fsync, for all of them. Each message is parsed once, whatever the number of its recipients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mailroom.content import junk, meetings, mime, recipients
from mailroom.content.properties import derive_properties
from mailroom.content.recipients import Address
from mailroom.store import Store
from mailroom.store.items import DUPLICATE, GONE
from mailroom.store.model import Delivery, Mailbox, NewItem, utcnow

from . import attendant, autoreply, delegate_copies
from .envelope import Submission

log = logging.getLogger(__name__)


@dataclass
class DeliveryResult:
    delivered: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    not_local: list[str] = field(default_factory=list)
    outgoing: list[Submission] = field(default_factory=list)  # for the transport to submit


@dataclass(frozen=True)
class LocalMessage:
    """One message to deliver: its bytes, the envelope recipients, the item class to store it as,
    and the envelope sender ("" for the null sender <>; None where there is no envelope)."""

    raw: bytes
    rcpts: list[str]
    item_class: str = "IPM.Note"
    mail_from: str | None = None


@dataclass
class _Prepared:
    parsed: mime.ParsedMessage
    mail_from: str | None
    result: DeliveryResult
    deliveries: list[tuple[str, Delivery, Submission | None]]  # (envelope address, what to store, its answer)
    copies: list[Delivery] = field(default_factory=list)  # delegates' copies of meeting messages


def deliver_local(store: Store, raw: bytes, rcpts: list[str], item_class: str = "IPM.Note",
                  mail_from: str | None = None) -> DeliveryResult:
    """Store ``raw`` in the Inbox of every recipient that is a local mailbox (or alias)."""
    return deliver_batch(store, [LocalMessage(raw, rcpts, item_class, mail_from)])[0]


def deliver_batch(store: Store, messages: list[LocalMessage]) -> list[DeliveryResult]:
    """``deliver_local`` for several messages in one store transaction; one result per message.
    Automatic replies are decided after the commit."""
    prepared = [_prepare(store, message) for message in messages]
    outcomes = iter(store.items.deliver([d for p in prepared for _, d, _ in p.deliveries]
                                        + [c for p in prepared for c in p.copies]))
    delivered: list[tuple[Mailbox, _Prepared]] = []
    for p in prepared:
        for address, delivery, answer in p.deliveries:
            outcome = next(outcomes)
            if outcome == GONE:  # removed since it was looked up
                p.result.not_local.append(address)
            elif outcome == DUPLICATE:
                p.result.duplicates.append(delivery.mailbox.address)
            else:
                p.result.delivered.append(delivery.mailbox.address)
                if delivery.folder != "junkemail":  # no automatic reply to junk mail
                    delivered.append((delivery.mailbox, p))
                if answer is not None:  # the attendant's answer, sent once: not for a redelivery
                    p.result.outgoing.append(answer)
    for mailbox, p in delivered:
        try:
            reply = autoreply.respond(store, mailbox, p.parsed, p.mail_from)
        except Exception:  # the message is stored; a failed automatic reply must not undo that
            log.exception("automatic reply for %s failed", mailbox.address)
            continue
        if reply is not None:
            p.result.outgoing.append(reply)
    return [p.result for p in prepared]


def _prepare(store: Store, message: LocalMessage) -> _Prepared:
    """Parse the message once and make one item per distinct local mailbox among its recipients."""
    parsed = mime.parse_message(message.raw)
    result = DeliveryResult()
    meeting = meetings.read(message.raw, parsed.message) if message.item_class == "IPM.Note" else None
    base = dict(parsed.props)
    base.update(ItemClass=message.item_class, IsRead=False, IsDraft=False, DateTimeReceived=utcnow())
    derive_properties(base)
    deliveries: list[tuple[str, Delivery, Submission | None]] = []
    copies: list[Delivery] = []
    seen: set[int] = set()
    for address in message.rcpts:
        mailbox = store.directory.lookup(address)
        if mailbox is None:
            result.not_local.append(address)
            continue
        if mailbox.id in seen:
            continue
        seen.add(mailbox.id)
        props = dict(base)
        props["ReceivedBy"] = recipients.build("ReceivedBy", [Address(mailbox.display_name, mailbox.address)], True)
        answer = None
        if meeting is not None:  # the calendar attendant: the item's class, the attendee's calendar, an answer
            answer = attendant.process(store, mailbox, meeting, props, parsed.body)
        item = NewItem(props=props, body=parsed.body, mime=message.raw, attachments=list(parsed.attachments))
        message_id, folder = parsed.props.get("InternetMessageId"), "inbox"
        if meeting is not None:
            folder, delegated = delegate_copies.route(store, mailbox, item, message_id)
            copies += delegated
        elif _blocked(store, mailbox, parsed, message.mail_from):
            folder = "junkemail"
        deliveries.append((address, Delivery(mailbox, item, message_id, folder), answer))
    return _Prepared(parsed, message.mail_from, result, deliveries, copies)


def _blocked(store: Store, mailbox: Mailbox, parsed: mime.ParsedMessage, mail_from: str | None) -> bool:
    """Whether the mailbox's junk lists send this message to Junk Email (by its From addresses and
    its envelope sender)."""
    lists = junk.load_cached(store, mailbox)
    if not lists.blocked:
        return False
    senders = [a.email for a in recipients.parse(parsed.props.get("From")) if a.email]
    return any(lists.is_junk(sender) for sender in (*senders, *([mail_from] if mail_from else [])))
