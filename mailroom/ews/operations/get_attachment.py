"""GetAttachment: attachments with their content; an item attachment's item comes in the
AttachmentShape (body type, MIME, additional properties)."""

from lxml import etree

from mailroom.access.permissions import Access

from ..attachments import AttachmentOperation, attachment_shape, render_full
from ..service import require
from ..xml import m, sub


class GetAttachment(AttachmentOperation):
    name = "GetAttachment"

    def execute(self, request: etree._Element) -> etree._Element:
        shape = attachment_shape(request.find(m("AttachmentShape")))
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            mailbox, item_row, row = self.attachment_from(id_el, Access.READ)
            att = self.ctx.store.items.attachment(mailbox, item_row, row)
            render_full(sub(msg, m("Attachments")), att, id_el.get("Id"), mailbox, shape, self.ctx)

        self.each(messages, list(require(request, m("AttachmentIds"))), one)
        return root
