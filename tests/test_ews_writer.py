"""The streaming writer (ews/xml.py) writes what lxml's serialiser writes: the same escaping, the
same refusals, the same content for stored XML values."""

from __future__ import annotations

import random

import pytest
from lxml import etree

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
