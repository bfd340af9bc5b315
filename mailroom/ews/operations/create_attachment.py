"""CreateAttachment: attach files or items to an existing item; each attachment changes the item's
ChangeKey, and the response carries the new one (RootItemChangeKey)."""

from lxml import etree

from mailroom.access.permissions import Access

from ..attachments import AttachmentOperation, attachment_id, element_name, parse_attachment, root_item_ids
from ..service import expected_change, require
from ..xml import m, sub, t


class CreateAttachment(AttachmentOperation):
    name = "CreateAttachment"

    def execute(self, request: etree._Element) -> etree._Element:
        parent_el = require(request, m("ParentItemId"))
        root, messages = self.response()

        def one(node: etree._Element, msg: etree._Element) -> None:
            mailbox, row_id = self.item_row(parent_el.get("Id") or "", Access.EDIT)
            expected_change(parent_el.get("ChangeKey"))
            att, item = self.ctx.store.items.add_attachment(mailbox, row_id, parse_attachment(node, self.ctx))
            created = sub(sub(msg, m("Attachments")), t(element_name(att)))
            sub(created, t("AttachmentId"), Id=attachment_id(mailbox, item, att), **root_item_ids(mailbox, item))

        self.each(messages, list(require(request, m("Attachments"))), one)
        return root
