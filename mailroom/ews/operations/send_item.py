"""SendItem: send saved drafts; with SaveItemToFolder the sent message moves to SavedItemFolderId
(Sent Items by default), without it the draft is deleted."""

from lxml import etree

from mailroom.access.permissions import Access

from ..errors import EWSError
from ..items import element_for_class
from ..sending import saved_copy_folder, send_existing
from ..service import Operation, boolean, expected_change, require
from ..xml import local, m, t


class SendItem(Operation):
    name = "SendItem"

    def execute(self, request: etree._Element) -> etree._Element:
        save = boolean(request.get("SaveItemToFolder"), "SaveItemToFolder")
        saved_el = request.find(m("SavedItemFolderId"))
        root, messages = self.response()

        def one(id_el: etree._Element, _msg: etree._Element) -> None:
            if id_el.tag != t("ItemId"):
                raise EWSError("ErrorInvalidOperation", f"{local(id_el.tag)} is not supported here.")
            if not save and saved_el is not None:
                raise EWSError("ErrorInvalidSendItemSaveSettings",
                               "SavedItemFolderId cannot be given when SaveItemToFolder is false.")
            mailbox, item = self.item_from(id_el, Access.EDIT)
            change_key = id_el.get("ChangeKey")
            if change_key and expected_change(change_key) != item.change_number:
                raise EWSError("ErrorStaleObject", "The item has changed since this ChangeKey was read.")
            if element_for_class(item.item_class, self.ctx) != "Message":
                raise EWSError("ErrorInvalidItemForOperationSendItem", "Only messages can be sent.")
            send_existing(self.ctx, mailbox, item, saved_copy_folder(self, saved_el, mailbox) if save else None)

        self.each(messages, list(require(request, m("ItemIds"))), one)
        return root
