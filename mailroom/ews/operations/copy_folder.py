"""CopyFolder: copy folders with their subfolders and items under another parent. The copy is an
ordinary folder (copying Drafts makes a folder named Drafts, not a second distinguished one)."""

from mailroom.access.permissions import Access
from mailroom.store.model import Folder, Mailbox

from .move_folder import MoveFolder


class CopyFolder(MoveFolder):
    name = "CopyFolder"
    source_need = Access.SEE_FOLDER

    def transfer(self, mailbox: Mailbox, folder: Folder, to_parent: int) -> Folder:
        store = self.ctx.store
        return store.folders.copy(mailbox, folder.id, to_parent, copy_items=store.items.copy_folder_items)
