"""FindItem: a page of a folder's items, filtered (Restriction or AQS QueryString) and sorted."""

from lxml import etree

from mailroom.store.query import And, Compare, Prop, Sort

from ..dates import to_utc_text
from ..errors import EWSError, SOAPFault
from ..items import render
from ..paging import Paging, parse_paging, set_paging_attributes
from ..paths import Shape
from ..restrictions import parse_query_string, parse_restriction, parse_sort
from ..service import Operation, require
from ..xml import m, sub, t


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
        paging = parse_paging(request)
        where = parse_restriction(request.find(m("Restriction")), self.ctx)
        query = request.find(m("QueryString"))
        if query is not None and (query.text or "").strip():
            text_filter = parse_query_string(query.text or "", self.ctx)
            where = text_filter if where is None else And((where, text_filter)) if text_filter else where
        sort = parse_sort(request.find(m("SortOrder")))
        calendar = request.find(m("CalendarView"))
        if calendar is not None:
            where, sort, paging = self._calendar_view(calendar, where)
        root, messages = self.response()

        def one(parent_el: etree._Element, msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(parent_el)
            found, total = [], 0
            if traversal != "SoftDeleted":
                found, total = self.ctx.store.items.find(
                    mailbox, folder.id, where=where, sort=sort, page=paging.page,
                    associated=traversal == "Associated", with_extended=bool(shape.extended))
            container = sub(msg, m("RootFolder"))
            set_paging_attributes(container, paging, len(found), total)
            items = sub(container, t("Items"))
            for item in found:
                render(items, mailbox, item, shape, self.ctx, find=True)

        self.each(messages, list(require(request, m("ParentFolderIds"))), one)
        return root

    def _calendar_view(self, view: etree._Element, where):  # noqa: ANN001, ANN202
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
        return window, [Sort(Prop("Start", "datetime"))], Paging("indexed", int(limit) if limit else None)
