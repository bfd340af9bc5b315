"""Namespaces, a hardened parser and small element builders. All XML is built as trees and
serialised by lxml, never by string formatting."""

from __future__ import annotations

import copy
from typing import Any

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
    remove_comments=True, remove_pis=True, collect_ids=False,
)


class XMLRejected(ValueError):
    """The request body is not XML we accept (malformed, a DTD, entities, nested too deep)."""


def parse(data: bytes) -> etree._Element:
    """Parse a request. Nothing external is ever loaded and no entity is expanded; documents
    with a DTD are refused, and libxml2's default depth limit stays on (no huge_tree). The size
    limit is applied where the body is read (``ews.max_request_bytes``)."""
    try:
        doc = etree.fromstring(data, _PARSER).getroottree()
    except etree.XMLSyntaxError as exc:
        raise XMLRejected(f"malformed XML: {exc}") from exc
    if doc.docinfo.doctype or doc.docinfo.internalDTD is not None:
        raise XMLRejected("DTDs are not allowed")
    root = doc.getroot()
    for el in root.iter(etree.Entity):
        raise XMLRejected(f"entity references are not allowed ({el})")
    return root


def parse_fragment(text: str) -> etree._Element:
    """Parse a stored property value (always produced by this server); the caller owns the
    result. The same values recur (a sender, the owner as the only recipient), and copying a
    parsed tree costs about a third of parsing it, so a small value seen a second time is kept
    parsed and copied from then on; a value that does not recur costs one parse, as before."""
    kept = _KEPT.get(text)
    if kept is not None:
        return copy.deepcopy(kept)
    parsed = etree.fromstring(text.encode(), _PARSER)
    if len(text) <= _KEPT_CHARS:
        if text in _SEEN:
            _bounded_put(_KEPT, text, copy.deepcopy(parsed))
        else:
            _bounded_put(_SEEN, text, None)
    return parsed


_KEPT_CHARS, _KEPT_ENTRIES = 2048, 1024
_SEEN: dict[str, None] = {}
_KEPT: dict[str, etree._Element] = {}


def _bounded_put(table: dict[str, Any], key: str, value: Any) -> None:
    """Add to a table of at most _KEPT_ENTRIES, emptied when full (each step atomic under the GIL)."""
    if len(table) >= _KEPT_ENTRIES:
        table.clear()
    table[key] = value


def first_children(parent: etree._Element) -> dict[object, etree._Element]:
    """The first child of each tag, as ``find(tag)`` gives it, in one pass over the children: on
    the per-request path this is much cheaper than a ``find`` per tag."""
    found: dict[object, etree._Element] = {}
    for child in parent:
        found.setdefault(child.tag, child)
    return found


def qn(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def t(name: str) -> str:
    return f"{{{T}}}{name}"


def m(name: str) -> str:
    return f"{{{M}}}{name}"


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def el(tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.Element(tag, {k: v for k, v in attrs.items() if v is not None}, nsmap=None)
    if text is not None:
        node.text = text
    return node


def local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def to_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def text_of(parent: etree._Element, tag: str, default: str | None = None) -> str | None:
    node = parent.find(tag)
    if node is None:
        return default
    return node.text or ""


def xml_bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("true", "1")


def bool_text(value: bool) -> str:
    return "true" if value else "false"
