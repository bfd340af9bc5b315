"""The streaming writer (ews/xml.py) and the stored values written as text (content/xmltext.py)
are what lxml's serialiser writes: the same escaping, the same refusals, the same content."""

from __future__ import annotations

import email
import email.policy
import random
from collections.abc import Callable
from email.message import Message

import pytest
from lxml import etree

from mailroom.content import mime, recipients
from mailroom.ews import xml

AWKWARD = 'ab &<>"\'\r\n\t\x00\x01\x1f\x7f\u00e9\u00a0\ud800\udfff\ufffe\uffff\u2028\U0001f600z'


def lxml_writes(text: str) -> str | None:
    """``<x a="text">text</x>`` as lxml serialises it, or None when lxml refuses the text."""
    el = etree.Element("x")
    try:
        el.text = text
        el.set("a", text)
    except ValueError:
        return None
    return etree.tostring(el, encoding="unicode")


def writer_writes(text: str) -> str | None:
    out = xml.Writer()
    try:
        out.leaf("x", text, {"a": text})
    except ValueError:
        return None
    return out.finish()


def test_escaping_agrees_with_lxml() -> None:
    rng = random.Random(20261122)
    for _ in range(20_000):
        text = "".join(rng.choice(AWKWARD) for _ in range(rng.randint(1, 8)))
        assert writer_writes(text) == lxml_writes(text), repr(text)


def test_long_values_are_escaped_and_checked() -> None:
    body = "<p>a & b</p>\r\n" * 500
    assert writer_writes(body) == lxml_writes(body)
    with pytest.raises(ValueError):
        xml.escape(body + "\x0b")


def test_a_stored_value_is_written_with_the_same_content() -> None:
    stored = ('<t:From xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" '
              'xmlns:x="urn:other"><t:Mailbox><t:Name>A &amp; B &lt;x&gt;</t:Name>\n  '
              '<t:EmailAddress>a@example.com</t:EmailAddress></t:Mailbox></t:From>')
    for _ in range(3):  # the written form is kept after the first time
        written = xml.written_fragment(stored)
        wrapped = f'<m:W xmlns:m="{xml.M}" xmlns:t="{xml.T}">{written}</m:W>'
        assert canonical(etree.fromstring(wrapped)[0]) == canonical(etree.fromstring(stored))


def test_rollback_forgets_what_was_written_since_the_mark() -> None:
    out = xml.Writer()
    out.start("m:Messages")
    mark = out.mark()
    out.start("m:Message", {"ResponseClass": "Success"})
    out.leaf("m:ResponseCode", "NoError")
    out.rollback(mark)
    out.leaf("m:ResponseCode", "ErrorItemNotFound")
    assert out.finish() == "<m:Messages><m:ResponseCode>ErrorItemNotFound</m:ResponseCode></m:Messages>"


def canonical(el: etree._Element) -> str:
    """The element's content without namespace declarations it does not use."""
    copy = etree.fromstring(etree.tostring(el))
    etree.cleanup_namespaces(copy)
    return etree.tostring(copy, method="c14n").decode()


def test_stored_recipient_and_header_values_are_what_lxml_writes() -> None:
    """The recipient values and InternetMessageHeaders stored with every delivered message are
    written as text; they are what the lxml trees they replaced serialised to, refusals included."""
    def lxml_recipients(element: str, addresses: list[recipients.Address], single: bool) -> str:
        root = etree.Element(f"{{{xml.T}}}{element}", nsmap={"t": xml.T})
        for address in addresses[:1] if single else addresses:
            mailbox = etree.SubElement(root, f"{{{xml.T}}}Mailbox")
            if address.name:
                etree.SubElement(mailbox, f"{{{xml.T}}}Name").text = address.name
            if address.email:
                etree.SubElement(mailbox, f"{{{xml.T}}}EmailAddress").text = address.email
            etree.SubElement(mailbox, f"{{{xml.T}}}RoutingType").text = address.routing_type or "SMTP"
            if address.mailbox_type:
                etree.SubElement(mailbox, f"{{{xml.T}}}MailboxType").text = address.mailbox_type
        return etree.tostring(root, encoding="unicode")

    def findtext_parse(value: str) -> list[recipients.Address]:  # what parse did before
        return [recipients.Address(name=m.findtext(f"{{{xml.T}}}Name"), email=m.findtext(f"{{{xml.T}}}EmailAddress"),
                                   routing_type=m.findtext(f"{{{xml.T}}}RoutingType") or "SMTP",
                                   mailbox_type=m.findtext(f"{{{xml.T}}}MailboxType"))
                for m in etree.fromstring(value.encode()).iter(f"{{{xml.T}}}Mailbox")]

    def outcome(build: Callable[..., str], *args: object) -> str:
        try:
            return build(*args)
        except ValueError:
            return "refused"

    rng = random.Random(20261123)

    def text() -> str | None:
        return rng.choice([None, "", "".join(rng.choice(AWKWARD) for _ in range(rng.randint(1, 6)))])

    for _ in range(5_000):
        addresses = [recipients.Address(text(), text(), rng.choice(["SMTP", "EX", ""]), text())
                     for _ in range(rng.randint(0, 3))]
        element, single = rng.choice([("ToRecipients", False), ("From", True)])
        written = outcome(recipients.build, element, addresses, single)
        assert written == outcome(lxml_recipients, element, addresses, single), addresses
        if written != "refused":
            assert recipients.parse(written) == findtext_parse(written)
    odd = (f'<t:ToRecipients xmlns:t="{xml.T}"><t:Mailbox><t:Name/><t:EmailAddress>a@x</t:EmailAddress>'
           f"<t:EmailAddress>b@x</t:EmailAddress><t:RoutingType/></t:Mailbox><t:Mailbox/></t:ToRecipients>")
    assert recipients.parse(odd) == findtext_parse(odd) == [recipients.Address("", "a@x", "SMTP", None),
                                                            recipients.Address(None, None, "SMTP", None)]

    def lxml_headers(msg: Message) -> str:
        root = etree.Element(f"{{{xml.T}}}InternetMessageHeaders", nsmap={"t": xml.T})
        for name, value in msg.raw_items():
            etree.SubElement(root, f"{{{xml.T}}}InternetMessageHeader",
                             HeaderName=mime._text(name)).text = mime._text(value).strip()
        return etree.tostring(root, encoding="unicode")

    raw = (b'Subject: a & b <c> "d"\r\nX-Odd: caf\xc3\xa9 \xff\r\n\tfolded\r\nX-Empty: \r\n'
           b"From: =?utf-8?q?Ren=C3=A9?= <r@x.example>\r\n\r\nbody\r\n")
    for message in (email.message_from_bytes(raw, policy=email.policy.compat32), Message()):
        assert mime._headers_xml(message) == lxml_headers(message)
