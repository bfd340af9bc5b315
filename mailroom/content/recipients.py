"""Mailbox (recipient) values as stored: the EWS ArrayOfRecipientsType/SingleRecipientType
element, serialised. These helpers read and build them for every role."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.store.query import Contains, Filter, Or, Prop

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


def parse(value: str | None) -> list[Address]:
    """The mailboxes in a stored recipient value (a list for To/Cc/Bcc/ReplyTo, one for From/Sender)."""
    if not value:
        return []
    root = etree.fromstring(value.encode())
    found = []
    for mailbox in root.iter(_t("Mailbox")):
        found.append(Address(
            name=mailbox.findtext(_t("Name")), email=mailbox.findtext(_t("EmailAddress")),
            routing_type=mailbox.findtext(_t("RoutingType")) or "SMTP",
            mailbox_type=mailbox.findtext(_t("MailboxType"))))
    return found


def build(element: str, addresses: list[Address], single: bool = False) -> str:
    """Serialise addresses as the stored value of ``element`` (``ToRecipients``, ``From`` ...)."""
    root = etree.Element(_t(element), nsmap={"t": T})
    for address in addresses[:1] if single else addresses:
        mailbox = etree.SubElement(root, _t("Mailbox"))
        if address.name:
            etree.SubElement(mailbox, _t("Name")).text = address.name
        if address.email:
            etree.SubElement(mailbox, _t("EmailAddress")).text = address.email
        etree.SubElement(mailbox, _t("RoutingType")).text = address.routing_type or "SMTP"
        if address.mailbox_type:
            etree.SubElement(mailbox, _t("MailboxType")).text = address.mailbox_type
    return etree.tostring(root, encoding="unicode")


def display_list(value: str | None) -> str:
    """DisplayTo / DisplayCc: names joined with '; ', as Exchange shows them."""
    return "; ".join(a.display() for a in parse(value))


def holds_address(address: str) -> Filter:
    """Items (contacts) whose stored EmailAddresses element has ``address`` as an entry's text,
    with or without the ``smtp:`` routing prefix."""
    emails = Prop("EmailAddresses")
    return Or((Contains(emails, f">{address}<"), Contains(emails, f">smtp:{address}<")))
