"""DeleteAttachment: remove attachments; the response names the parent item with its new ChangeKey."""

from lxml import etree

from mailroom.access.permissions import Access

from ..attachments import AttachmentOperation, root_item_ids
from ..service import require
from ..xml import m, sub


class DeleteAttachment(AttachmentOperation):
    name = "DeleteAttachment"

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            mailbox, item_row, row = self.attachment_from(id_el, Access.EDIT)
            item = self.ctx.store.items.delete_attachment(mailbox, item_row, row)
            sub(msg, m("RootItemId"), **root_item_ids(mailbox, item))

        self.each(messages, list(require(request, m("AttachmentIds"))), one)
        return root
