"""FindItem: a page of a folder's items, filtered (Restriction or AQS QueryString) and sorted.

An unfiltered view costs what its page costs: the total comes from the folder's counters and the
page is read from an index in order. A restriction, sort or view the server cannot serve is
answered per folder with its error code, as Exchange does. A CalendarView lists single items and
the occurrences of recurring ones in its window, by start."""

from datetime import timedelta

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store.model import Folder, Item, Mailbox
from mailroom.store.query import And, Filter, Sort

from .. import calendar
from ..context import Context
from ..dates import parse_utc, to_utc_text
from ..errors import EWSError, SOAPFault
from ..items import render
from ..paging import Paging, budgeted, paging_attributes, parse_paging
from ..paths import Shape
from ..restrictions import parse_query_string, parse_restriction, parse_sort
from ..service import Operation, Written, require
from ..xml import first_children, local, m

_MAX_VIEW = timedelta(days=2 * 366)  # Exchange's limit on a CalendarView's window
_ITEM_SHAPE, _GROUP_BY, _DISTINGUISHED_GROUP_BY = m("ItemShape"), m("GroupBy"), m("DistinguishedGroupBy")
_QUERY_STRING, _CALENDAR_VIEW, _PARENT_FOLDER_IDS = m("QueryString"), m("CalendarView"), m("ParentFolderIds")
_RESTRICTION, _SORT_ORDER = m("Restriction"), m("SortOrder")


class FindItem(Operation):
    name = "FindItem"
    writes = True

    def execute(self, request: etree._Element) -> Written:
        traversal = request.get("Traversal") or "Shallow"
        if traversal not in ("Shallow", "Deep", "SoftDeleted", "Associated"):
            raise SOAPFault("ErrorSchemaValidation", f"Traversal {traversal!r} is not valid.")
        if traversal == "Deep":
            raise EWSError("ErrorInvalidOperation", "Deep traversal is only valid for search folders.")
        children = first_children(request)  # one pass rather than a find per element
        shape = Shape.parse(children.get(_ITEM_SHAPE))
        if _GROUP_BY in children or _DISTINGUISHED_GROUP_BY in children:
            raise EWSError("ErrorInvalidOperation", "Grouped FindItem is not supported.")
        query = children.get(_QUERY_STRING)
        if query is not None and not self.ctx.at_least("Exchange2010"):
            raise SOAPFault("ErrorSchemaValidation", "QueryString is not part of the requested schema version.")
        failure: EWSError | None = None
        view: _CalendarView | None = None
        try:
            paging, where, sort = self._view(request, children, query)
            calendar_el = children.get(_CALENDAR_VIEW)
            if calendar_el is not None:
                if where is not None:
                    raise EWSError("ErrorInvalidRestriction", "CalendarView cannot be combined with a Restriction.")
                view = _CalendarView(calendar_el, self.ctx)
        except EWSError as err:  # reported for each folder, as Exchange does
            failure, paging, where, sort = err, Paging(), None, []
        out = self.written()

        def one(parent_el: etree._Element, out: Written) -> None:
            mailbox, folder = self.folder_from(parent_el, Access.READ)
            if failure is not None:
                raise failure
            found, total = [], 0
            if view is not None:
                found, total = view.items(self.ctx, mailbox, folder, shape)
            elif traversal != "SoftDeleted":
                found, total = self.ctx.store.items.find(
                    mailbox, folder.id, where=where, sort=sort, page=budgeted(paging, self.ctx),
                    associated=traversal == "Associated", with_extended=bool(shape.extended),
                    hide_private=self.ctx.hides_private(mailbox))
            out.start("m:RootFolder", paging_attributes(paging, len(found), total))
            out.start("t:Items")
            for item in found:
                render(out, mailbox, item, shape, self.ctx, find=True)
            out.end()
            out.end()

        self.each_written(out, list(require(request, _PARENT_FOLDER_IDS)), one)
        return out

    def _view(self, request: etree._Element, children: dict[object, etree._Element],
              query: etree._Element | None) -> tuple[Paging, Filter | None, list[Sort]]:
        """The page, filter and order the request asks for."""
        where = parse_restriction(children.get(_RESTRICTION), self.ctx)
        text = parse_query_string(query.text or "", self.ctx) if query is not None else None
        if text is not None:
            where = text if where is None else And((where, text))
        sort = parse_sort(children.get(_SORT_ORDER))
        if any(local(c.tag) in ("SeekToConditionPageItemView", "ContactsView") for c in request):
            raise EWSError("ErrorInvalidOperation", "This paged view is not supported.")
        return parse_paging(request), where, sort



class _CalendarView:
    """A CalendarView: the window, checked as Exchange checks it, and its size limit."""

    def __init__(self, view: etree._Element, ctx: Context) -> None:
        try:
            self.start = parse_utc(to_utc_text(view.get("StartDate") or "", ctx.tz))
            self.end = parse_utc(to_utc_text(view.get("EndDate") or "", ctx.tz))
        except EWSError as exc:
            raise SOAPFault("ErrorSchemaValidation", "CalendarView needs StartDate and EndDate.") from exc
        if self.end < self.start:
            raise EWSError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate.")
        if self.end - self.start > _MAX_VIEW:
            raise EWSError("ErrorCalendarViewRangeTooBig", "A calendar view may span at most two years.")
        limit = view.get("MaxEntriesReturned")
        try:
            self.limit = int(limit) if limit is not None else None
        except ValueError as exc:
            raise SOAPFault("ErrorSchemaValidation", "MaxEntriesReturned must be a number.") from exc
        if self.limit is not None and self.limit < 1:
            raise EWSError("ErrorInvalidPagingMaxRows", "MaxEntriesReturned must be at least 1.")

    def items(self, ctx: Context, mailbox: Mailbox, folder: Folder, shape: Shape) -> tuple[list[Item], int]:
        """The first MaxEntriesReturned single items and occurrences of the window, and how many there are."""
        if not (folder.folder_class or "").startswith("IPF.Appointment"):
            raise EWSError("ErrorCalendarFolderIsInvalidForCalendarView", "The folder is not a calendar folder.")
        found = calendar.view(ctx.store, mailbox, folder.id, self.start, self.end, with_extended=bool(shape.extended),
                              hide_private=ctx.hides_private(mailbox))
        return found[:self.limit] if self.limit is not None else found, len(found)
