"""MoveItem: items to another folder of the mailbox. A moved item is created anew in the target
folder and the response carries its new id (Exchange 2007 SP1 RU4 on); ReturnNewItemIds=false
(Exchange 2010 SP1) leaves the ids out."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store.model import Folder, Item, Mailbox

from ..errors import EWSError
from ..folders import target_folder
from ..items import render_element
from ..paths import Shape
from ..service import Operation, boolean, require
from ..xml import local, m, sub, t


class MoveOrCopy(Operation):
    """What MoveItem and CopyItem share; subclasses say what happens to one item and what the
    caller needs on the source (a move deletes it there, a copy reads it)."""

    source_need = Access.DELETE

    def transfer(self, mailbox: Mailbox, item_id: int, folder: Folder) -> Item:
        raise NotImplementedError

    def execute(self, request: etree._Element) -> etree._Element:
        to_el = require(request, m("ToFolderId"))
        return_ids = request.find(m("ReturnNewItemIds"))
        want_ids = return_ids is None or boolean(return_ids.text, "ReturnNewItemIds")
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            if id_el.tag != t("ItemId"):
                raise EWSError("ErrorInvalidOperation", f"{local(id_el.tag)} is not supported here.")
            mailbox, row_id = self.item_row(id_el.get("Id") or "", self.source_need)
            to_mailbox, folder = target_folder(self.folder_from, to_el, "ErrorToFolderNotFound", Access.CREATE)
            if to_mailbox.id != mailbox.id:
                raise EWSError("ErrorCrossMailboxMoveCopy", "Items can only be moved or copied within a mailbox.")
            new = self.transfer(mailbox, row_id, folder)
            items = sub(msg, m("Items"))
            if want_ids:
                render_element(items, mailbox, new, Shape(base="IdOnly"), self.ctx)

        self.each(messages, list(require(request, m("ItemIds"))), one)
        return root


class MoveItem(MoveOrCopy):
    name = "MoveItem"

    def transfer(self, mailbox: Mailbox, item_id: int, folder: Folder) -> Item:
        return self.ctx.store.items.move(mailbox, item_id, folder.id)
