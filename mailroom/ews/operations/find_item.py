"""FindItem: a page of a folder's items, filtered (Restriction or AQS QueryString) and sorted.

An unfiltered view costs what its page costs: the total comes from the folder's counters and the
page is read from an index in order. A restriction, sort or view the server cannot serve is
answered per folder with its error code, as Exchange does."""

from lxml import etree

from mailroom.store.query import And, Compare, Filter, Prop, Sort

from ..dates import to_utc_text
from ..errors import EWSError, SOAPFault
from ..items import render
from ..paging import Paging, budgeted, parse_paging, set_paging_attributes
from ..paths import Shape
from ..restrictions import parse_query_string, parse_restriction, parse_sort
from ..service import Operation, require
from ..xml import local, m, sub, t


class FindItem(Operation):
    name = "FindItem"

    def execute(self, request: etree._Element) -> etree._Element:
        traversal = request.get("Traversal") or "Shallow"
        if traversal not in ("Shallow", "Deep", "SoftDeleted", "Associated"):
            raise SOAPFault("ErrorSchemaValidation", f"Traversal {traversal!r} is not valid.")
        if traversal == "Deep":
            raise EWSError("ErrorInvalidOperation", "Deep traversal is only valid for search folders.")
        shape = Shape.parse(request.find(m("ItemShape")))
        if request.find(m("GroupBy")) is not None or request.find(m("DistinguishedGroupBy")) is not None:
            raise EWSError("ErrorInvalidOperation", "Grouped FindItem is not supported.")
        query = request.find(m("QueryString"))
        if query is not None and not self.ctx.at_least("Exchange2010"):
            raise SOAPFault("ErrorSchemaValidation", "QueryString is not part of the requested schema version.")
        failure: EWSError | None = None
        try:
            paging, where, sort = self._view(request, query)
        except EWSError as err:  # reported for each folder, as Exchange does
            failure, paging, where, sort = err, Paging(), None, []
        root, messages = self.response()

        def one(parent_el: etree._Element, msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(parent_el)
            if failure is not None:
                raise failure
            found, total = [], 0
            if traversal != "SoftDeleted":
                found, total = self.ctx.store.items.find(
                    mailbox, folder.id, where=where, sort=sort, page=budgeted(paging, self.ctx),
                    associated=traversal == "Associated", with_extended=bool(shape.extended))
            container = sub(msg, m("RootFolder"))
            set_paging_attributes(container, paging, len(found), total)
            items = sub(container, t("Items"))
            for item in found:
                render(items, mailbox, item, shape, self.ctx, find=True)

        self.each(messages, list(require(request, m("ParentFolderIds"))), one)
        return root

    def _view(self, request: etree._Element, query: etree._Element | None) -> tuple[Paging, Filter | None, list[Sort]]:
        """The page, filter and order the request asks for."""
        where = parse_restriction(request.find(m("Restriction")), self.ctx)
        text = parse_query_string(query.text or "", self.ctx) if query is not None else None
        if text is not None:
            where = text if where is None else And((where, text))
        sort = parse_sort(request.find(m("SortOrder")))
        calendar = request.find(m("CalendarView"))
        if calendar is not None:
            return self._calendar_view(calendar, where)
        if any(local(c.tag) in ("SeekToConditionPageItemView", "ContactsView") for c in request):
            raise EWSError("ErrorInvalidOperation", "This paged view is not supported.")
        return parse_paging(request), where, sort

    def _calendar_view(self, view: etree._Element, where: Filter | None) -> tuple[Paging, Filter, list[Sort]]:
        """Items overlapping [StartDate, EndDate), ordered by Start (occurrences are not expanded)."""
        try:
            start = to_utc_text(view.get("StartDate") or "", self.ctx.tz)
            end = to_utc_text(view.get("EndDate") or "", self.ctx.tz)
        except EWSError as exc:
            raise SOAPFault("ErrorSchemaValidation", "CalendarView needs StartDate and EndDate.") from exc
        if where is not None:
            raise EWSError("ErrorInvalidRestriction", "CalendarView cannot be combined with a Restriction.")
        window = And((Compare(Prop("Start", "datetime"), "lt", end), Compare(Prop("End", "datetime"), "gt", start)))
        limit = view.get("MaxEntriesReturned")
        return Paging("indexed", int(limit) if limit else None), window, [Sort(Prop("Start", "datetime"))]
