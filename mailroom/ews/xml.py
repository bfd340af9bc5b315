"""Namespaces, a hardened parser, small element builders and the streaming writer. XML is never
made by string formatting: requests and most responses are lxml trees serialised by lxml; item
responses (GetItem, FindItem, SyncFolderItems) are written by ``Writer``, which escapes every text
and attribute value and takes tag and attribute names only from the code's constants."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree

from mailroom.content.xmltext import attributes, escape
from mailroom.content.xmltext import escape_attribute as escape_attribute  # for the item renderer

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}
_PREFIXES = {M: "m", T: "t"}  # what the response envelope declares (besides s) and Writer writes

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


def int_text(value: int) -> str:
    """An xs:int's text; a larger count is given as the largest xs:int."""
    return str(min(value, 2**31 - 1))


# -- the streaming writer -----------------------------------------------------------------------
class Writer:
    """XML written as it is produced, for responses where building an lxml tree would cost more
    than everything else (an item is about 25 elements, each ``SubElement`` validating its tag and
    namespace). Tags are prefixed names from constants (``t:Subject``; the prefixes the envelope
    declares); every text and attribute value goes through ``escape``; trees (stored XML values,
    parts still built with lxml) are written by ``element``, which escapes theirs the same way.
    ``parts`` is open to the hot rendering loop, which appends escaped pieces directly."""

    __slots__ = ("parts", "_open")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._open: list[str] = []

    def start(self, tag: str, attrs: Mapping[str, str | None] | None = None) -> None:
        self.parts.append(f"<{tag}{attributes(attrs)}>" if attrs else f"<{tag}>")
        self._open.append(tag)

    def end(self) -> None:
        self.parts.append(f"</{self._open.pop()}>")

    def leaf(self, tag: str, text: str | None = None, attrs: Mapping[str, str | None] | None = None) -> None:
        """An element without children: ``<tag attrs>text</tag>``, or ``<tag attrs/>`` without text."""
        head = f"<{tag}{attributes(attrs)}" if attrs else f"<{tag}"
        self.parts.append(f"{head}>{escape(text)}</{tag}>" if text else f"{head}/>")

    def element(self, el: etree._Element) -> None:
        """An lxml element and everything in it (not its tail)."""
        _write_tree(el, self.parts)

    def built(self, build: Callable[[etree._Element], object]) -> None:
        """What an lxml builder shared with tree-built responses (error messages, time zones,
        attachments ...) appends to a parent, written."""
        holder = etree.Element(_HOLDER, nsmap=_HOLDER_NSMAP)
        build(holder)
        for child in holder:
            _write_tree(child, self.parts)

    def mark(self) -> tuple[int, int]:
        return len(self.parts), len(self._open)

    def rollback(self, mark: tuple[int, int]) -> None:
        """Forget everything written since ``mark``."""
        del self.parts[mark[0]:]
        del self._open[mark[1]:]

    def finish(self) -> str:
        """The text, with every element still open closed."""
        while self._open:
            self.end()
        return "".join(self.parts)


_HOLDER, _HOLDER_NSMAP = f"{{{M}}}Holder", {"m": M, "t": T}


def _write_tree(el: etree._Element, out: list[str]) -> None:
    tag = _prefixed(el.tag)
    attrib = el.attrib
    if tag is None or any(name[0] == "{" for name in attrib):  # a namespace the envelope does not declare
        out.append(etree.tostring(el, encoding="unicode", with_tail=False))
        return
    head = f"<{tag}{attributes(attrib)}" if attrib else f"<{tag}"
    if len(el) == 0:
        out.append(f"{head}>{escape(el.text)}</{tag}>" if el.text else f"{head}/>")
        return
    out.append(f"{head}>{escape(el.text)}" if el.text else f"{head}>")
    for child in el:
        _write_tree(child, out)
        if child.tail:
            out.append(escape(child.tail))
    out.append(f"</{tag}>")


def _prefixed(tag: object) -> str | None:
    """``t:Name`` for ``{types}Name`` (and m: for messages); None for anything else."""
    found = _TAGS.get(tag)
    if found is None and isinstance(tag, str) and tag[:1] == "{":
        ns, _, name = tag[1:].partition("}")
        prefix = _PREFIXES.get(ns)
        if prefix is None:
            return None
        found = f"{prefix}:{name}"
        if len(_TAGS) < 4096:  # the schema's names; a bound against anything else
            _TAGS[tag] = found
    return found


_TAGS: dict[object, str] = {}


def written_fragment(text: str) -> str:
    """A stored XML value (From, recipients ...; always produced by this server) as ``Writer``
    writes it. The same values recur (a sender, the owner as the only recipient), so the written
    form of a small value is kept (at most 1,024 of them)."""
    found = _WRITTEN.get(text)
    if found is None:
        out: list[str] = []
        _write_tree(etree.fromstring(text.encode(), _PARSER), out)
        found = "".join(out)
        if len(text) <= _KEPT_CHARS:
            _bounded_put(_WRITTEN, text, found)
    return found


_WRITTEN: dict[str, str] = {}
# For this server's own written XML: no limit on a text node's size (an attached item's MimeContent
# may pass libxml2's default of 10 MB); still nothing external and no entities.
_WRITTEN_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True,
                                  collect_ids=False)


def append_written(parent: etree._Element, written: str) -> etree._Element:
    """Append what a Writer wrote (one element) to a tree that is still built with lxml, and return it."""
    holder = etree.fromstring(f'<m:Written xmlns:m="{M}" xmlns:t="{T}">{written}</m:Written>'.encode(),
                              _WRITTEN_PARSER)
    node = holder[0]
    parent.append(node)
    return node
