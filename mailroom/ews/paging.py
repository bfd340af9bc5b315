"""Paged views (IndexedPage*View, FractionalPage*View) and the paging attributes of
FindItem/FindFolder responses, which clients read on every page (TotalItemsInView and
IncludesLastItemInRange are always present)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.store.query import Page

from .errors import SOAPFault
from .xml import bool_text, local


@dataclass
class Paging:
    kind: str = "none"  # none, indexed, fractional
    limit: int | None = None
    offset: int = 0
    from_end: bool = False
    numerator: int = 0
    denominator: int = 1
    start: int = 0  # set by page(): where the returned page starts

    def page(self, total: int) -> Page:
        """The page to fetch once the size of the whole view is known."""
        if self.kind == "fractional":
            start = self.numerator * total // self.denominator
        elif self.from_end:
            start = max(0, total - self.offset - (self.limit if self.limit is not None else total))
        else:
            start = self.offset
        self.start = min(start, total)
        limit = self.limit
        if self.from_end and limit is not None:
            limit = min(limit, max(0, total - self.offset))
        return Page(self.start, limit)


def _int(node: etree._Element, name: str, default: int | None = None) -> int | None:
    value = node.get(name)
    if value is None:
        if default is None:
            raise SOAPFault("ErrorSchemaValidation", f"{local(node.tag)} needs the {name} attribute.")
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise SOAPFault("ErrorSchemaValidation", f"{name}={value!r} is not a number.") from exc
    if number < 0:
        raise SOAPFault("ErrorSchemaValidation", f"{name} must not be negative.")
    return number


def parse_paging(request: etree._Element) -> Paging:
    for child in request:
        name = local(child.tag)
        if name in ("IndexedPageItemView", "IndexedPageFolderView"):
            max_entries = child.get("MaxEntriesReturned")
            return Paging("indexed", _int(child, "MaxEntriesReturned") if max_entries else None,
                          _int(child, "Offset") or 0, (child.get("BasePoint") or "Beginning") == "End")
        if name in ("FractionalPageItemView", "FractionalPageFolderView"):
            max_entries = child.get("MaxEntriesReturned")
            denominator = _int(child, "Denominator") or 0
            numerator = _int(child, "Numerator") or 0
            if denominator == 0 or numerator > denominator:
                raise SOAPFault("ErrorSchemaValidation", "Numerator must be between 0 and a non-zero Denominator.")
            return Paging("fractional", _int(child, "MaxEntriesReturned") if max_entries else None,
                          numerator=numerator, denominator=denominator)
    return Paging()


def set_paging_attributes(node: etree._Element, paging: Paging, returned: int, total: int) -> None:
    end = paging.start + returned
    if paging.kind == "fractional":
        node.set("NumeratorOffset", str(end))
        node.set("AbsoluteDenominator", str(total))
    else:
        node.set("IndexedPagingOffset", str(paging.offset + returned if paging.from_end else end))
    node.set("TotalItemsInView", str(total))
    node.set("IncludesLastItemInRange", bool_text(paging.start == 0 if paging.from_end else end >= total))


