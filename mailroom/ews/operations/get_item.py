"""GetItem: items (and occurrences of recurring calendar items) by id, in the shape asked for."""

from lxml import etree

from ..items import mime_of, render
from ..paths import Shape
from ..service import Operation, Written, require
from ..xml import m

_ITEM_SHAPE, _ITEM_IDS = m("ItemShape"), m("ItemIds")


class GetItem(Operation):
    name = "GetItem"
    writes = True

    def execute(self, request: etree._Element) -> Written:
        shape = Shape.parse(next(request.iterchildren(_ITEM_SHAPE), None))
        want_mime = shape.include_mime or "MimeContent" in shape.fields
        out = self.written()

        def one(id_el: etree._Element, out: Written) -> None:
            mailbox, item = self.item_from(id_el, with_extended=bool(shape.extended))
            mime = mime_of(self.ctx, mailbox, item) if want_mime else None
            out.start("m:Items")
            render(out, mailbox, item, shape, self.ctx, mime=mime)
            out.end()

        self.each_written(out, list(require(request, _ITEM_IDS)), one)
        return out
