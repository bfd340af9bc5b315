"""CopyItem: copies of items in another folder of the mailbox; the response carries their ids."""

from mailroom.access.permissions import Access
from mailroom.store.model import Folder, Item, Mailbox

from .move_item import MoveOrCopy


class CopyItem(MoveOrCopy):
    name = "CopyItem"
    source_need = Access.READ

    def transfer(self, mailbox: Mailbox, item_id: int, folder: Folder) -> Item:
        return self.ctx.store.items.copy(mailbox, item_id, folder.id)
