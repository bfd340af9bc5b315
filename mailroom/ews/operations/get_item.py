"""GetItem: items (and occurrences of recurring calendar items) by id, in the shape asked for."""

from lxml import etree

from ..items import mime_of, render
from ..paths import Shape
from ..service import Operation, require
from ..xml import m, sub

_ITEM_SHAPE, _ITEM_IDS = m("ItemShape"), m("ItemIds")


class GetItem(Operation):
    name = "GetItem"

    def execute(self, request: etree._Element) -> etree._Element:
        shape = Shape.parse(next(request.iterchildren(_ITEM_SHAPE), None))
        want_mime = shape.include_mime or "MimeContent" in shape.fields
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            mailbox, item = self.item_from(id_el, with_extended=bool(shape.extended))
            mime = mime_of(self.ctx, mailbox, item) if want_mime else None
            render(sub(msg, m("Items")), mailbox, item, shape, self.ctx, mime=mime)

        self.each(messages, list(require(request, _ITEM_IDS)), one)
        return root
