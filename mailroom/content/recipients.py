"""Mailbox (recipient) values as stored: the EWS ArrayOfRecipientsType/SingleRecipientType
element, serialised. These helpers read and build them for every role."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.store.query import Contains, Filter, Or, Prop

from .xmltext import escape, root

T = "http://schemas.microsoft.com/exchange/services/2006/types"


@dataclass(frozen=True, slots=True)
class Address:
    name: str | None
    email: str | None
    routing_type: str = "SMTP"
    mailbox_type: str | None = None

    def display(self) -> str:
        return self.name or self.email or ""


def _t(name: str) -> str:
    return f"{{{T}}}{name}"


_MAILBOX, _NAME, _EMAIL, _ROUTING_TYPE, _MAILBOX_TYPE = (
    _t(name) for name in ("Mailbox", "Name", "EmailAddress", "RoutingType", "MailboxType"))


def parse(value: str | None) -> list[Address]:
    """The mailboxes in a stored recipient value (a list for To/Cc/Bcc/ReplyTo, one for From/Sender)."""
    if not value:
        return []
    found = []
    for mailbox in etree.fromstring(value.encode()).iter(_MAILBOX):
        fields: dict[object, str] = {}
        for child in mailbox:  # each field's first occurrence, its text "" when empty (as findtext)
            fields.setdefault(child.tag, child.text or "")
        found.append(Address(name=fields.get(_NAME), email=fields.get(_EMAIL),
                             routing_type=fields.get(_ROUTING_TYPE) or "SMTP", mailbox_type=fields.get(_MAILBOX_TYPE)))
    return found


def build(element: str, addresses: list[Address], single: bool = False) -> str:
    """Serialise addresses as the stored value of ``element`` (``ToRecipients``, ``From`` ...),
    as lxml would serialise the element (written as text: it is made for every delivered message)."""
    parts = []
    for address in addresses[:1] if single else addresses:
        parts.append("<t:Mailbox>")
        if address.name:
            parts.append(f"<t:Name>{escape(address.name)}</t:Name>")
        if address.email:
            parts.append(f"<t:EmailAddress>{escape(address.email)}</t:EmailAddress>")
        parts.append(f"<t:RoutingType>{escape(address.routing_type or 'SMTP')}</t:RoutingType>")
        if address.mailbox_type:
            parts.append(f"<t:MailboxType>{escape(address.mailbox_type)}</t:MailboxType>")
        parts.append("</t:Mailbox>")
    return root(element, "t", T, parts)


def display_list(value: str | None) -> str:
    """DisplayTo / DisplayCc: names joined with '; ', as Exchange shows them."""
    return "; ".join(a.display() for a in parse(value))


def holds_address(address: str) -> Filter:
    """Items (contacts) whose stored EmailAddresses element has ``address`` as an entry's text,
    with or without the ``smtp:`` routing prefix."""
    emails = Prop("EmailAddresses")
    return Or((Contains(emails, f">{address}<"), Contains(emails, f">smtp:{address}<")))
