"""Paged views (IndexedPage*View, FractionalPage*View) and the paging attributes of
FindItem/FindFolder responses, which clients read on every page (TotalItemsInView and
IncludesLastItemInRange are always present), and the caller's EwsFindCountLimit on what a page
may hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from mailroom.store.query import Page
from mailroom.throttling.budget import Throttled

from .context import Context
from .errors import EWSError, SOAPFault
from .xml import bool_text, local


@dataclass
class Paging:
    """A view of the whole result: ``limit`` entries at ``offset`` from the beginning, or from the
    end (seeking backwards: the page ends ``offset`` entries before the last), or at a fraction."""

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
            self.start = min(total, self.numerator * total // self.denominator)
            return Page(self.start, self.limit)
        if not self.from_end:
            self.start = min(total, self.offset)
            return Page(self.start, self.limit)
        end = max(0, total - self.offset)
        self.start = 0 if self.limit is None else max(0, end - self.limit)
        return Page(self.start, end - self.start)


def budgeted(paging: Paging, ctx: Context) -> Callable[[int], Page]:
    """``paging.page`` charged to the caller's EwsFindCountLimit (given back when the response has
    been sent). Over the limit, a paged Exchange2010_SP1+ caller gets as much as is left (the page
    then says IncludesLastItemInRange false); any other caller ErrorExceededFindCountLimit, or
    ErrorServerBusy before Exchange2010_SP1, as on Exchange."""
    ticket = ctx.ticket
    if ticket is None:
        return paging.page
    partial = paging.kind != "none" and ctx.at_least("Exchange2010_SP1")

    def page(total: int) -> Page:
        wanted = paging.page(total)
        rest = max(0, total - wanted.offset)
        count = rest if wanted.limit is None else min(wanted.limit, rest)
        granted = ticket.find_items(count, partial)
        if granted == count:
            return wanted
        if partial:
            return Page(wanted.offset, granted)
        limit = ctx.limit("EwsFindCountLimit")
        if not ctx.at_least("Exchange2010_SP1"):
            raise Throttled("ErrorServerBusy", f"The result ({count} entries) is over the find-count limit ({limit}).")
        raise EWSError("ErrorExceededFindCountLimit",
                       f"The result ({count} entries) is over the find-count limit ({limit}); use a paged view.")

    return page


def _int(node: etree._Element, name: str) -> int | None:
    value = node.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise SOAPFault("ErrorSchemaValidation", f"{name}={value!r} is not a number.") from exc


def parse_paging(request: etree._Element) -> Paging:
    """The request's paged view; bad numbers are ErrorInvalidPagingMaxRows and
    ErrorInvalidIndexedPagingParameters / ErrorInvalidFractionalPagingParameters, as on Exchange."""
    for child in request:
        name = local(child.tag)
        if name not in ("IndexedPageItemView", "IndexedPageFolderView", "FractionalPageItemView",
                        "FractionalPageFolderView"):
            continue
        limit = _int(child, "MaxEntriesReturned")
        if limit is not None and limit < 1:
            raise EWSError("ErrorInvalidPagingMaxRows", "MaxEntriesReturned must be at least 1.")
        if name.startswith("Indexed"):
            offset, base = _int(child, "Offset"), child.get("BasePoint")
            if offset is None or base not in ("Beginning", "End"):
                raise SOAPFault("ErrorSchemaValidation", f"{name} needs Offset and BasePoint (Beginning or End).")
            if offset < 0:
                raise EWSError("ErrorInvalidIndexedPagingParameters", "Offset must not be negative.")
            return Paging("indexed", limit, offset, base == "End")
        numerator, denominator = _int(child, "Numerator"), _int(child, "Denominator")
        if numerator is None or denominator is None:
            raise SOAPFault("ErrorSchemaValidation", f"{name} needs Numerator and Denominator.")
        if denominator <= 0 or not 0 <= numerator <= denominator:
            raise EWSError("ErrorInvalidFractionalPagingParameters",
                           "Numerator must be between 0 and a positive Denominator.")
        return Paging("fractional", limit, numerator=numerator, denominator=denominator)
    return Paging()


def set_paging_attributes(node: etree._Element, paging: Paging, returned: int, total: int) -> None:
    node.attrib.update(paging_attributes(paging, returned, total))


def paging_attributes(paging: Paging, returned: int, total: int) -> dict[str, str]:
    """IndexedPagingOffset is where the next page starts (counted from the end when paging from
    the end); fractional views get NumeratorOffset/AbsoluteDenominator instead."""
    end = paging.start + returned
    if paging.kind == "fractional":
        found = {"NumeratorOffset": str(end), "AbsoluteDenominator": str(total)}
    else:
        found = {"IndexedPagingOffset": str(paging.offset + returned if paging.from_end else end)}
    found["TotalItemsInView"] = str(total)
    found["IncludesLastItemInRange"] = bool_text(paging.start == 0 if paging.from_end else end >= total)
    return found
