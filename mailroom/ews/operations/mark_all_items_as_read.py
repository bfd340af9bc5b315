"""MarkAllItemsAsRead (Exchange 2013): set or clear the read flag on every item of folders."""

from lxml import etree

from mailroom.access.permissions import Access

from ..service import Operation, boolean, require
from ..xml import m


class MarkAllItemsAsRead(Operation):
    name = "MarkAllItemsAsRead"
    min_version = "Exchange2013"

    def execute(self, request: etree._Element) -> etree._Element:
        read = boolean(require(request, m("ReadFlag")).text, "ReadFlag")
        boolean(require(request, m("SuppressReadReceipts")).text, "SuppressReadReceipts")  # no receipts are sent yet
        root, messages = self.response()

        def one(folder_el: etree._Element, _msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(folder_el, Access.EDIT)
            self.ctx.store.items.mark_all_read(mailbox, folder.id, read)

        self.each(messages, list(require(request, m("FolderIds"))), one)
        return root
