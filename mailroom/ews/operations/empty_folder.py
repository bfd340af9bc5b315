"""EmptyFolder: delete a folder's items (and optionally its subfolders) but keep the folder; this
is how clients empty Deleted Items. Distinguished subfolders are never deleted: they stay, with
their contents, as the store keeps Exchange's default folders."""

from lxml import etree

from mailroom.access.permissions import Access

from ..folders import disposal, trash_id
from ..service import Operation, boolean, require
from ..xml import m


class EmptyFolder(Operation):
    name = "EmptyFolder"
    min_version = "Exchange2010_SP1"

    def execute(self, request: etree._Element) -> etree._Element:
        delete_type = disposal(request)
        subfolders = boolean(request.get("DeleteSubFolders"), "DeleteSubFolders")
        store = self.ctx.store
        root, messages = self.response()

        def one(id_el: etree._Element, _msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(id_el, Access.DELETE)
            trash = trash_id(store, mailbox, delete_type, source=folder.id)
            store.items.empty_folder(mailbox, folder.id, subfolders and trash is None, to_folder=trash)
            if subfolders and trash is not None:
                for child in store.folders.find(mailbox, folder.id, deep=False)[0]:
                    if not child.distinguished_id:
                        store.folders.delete(mailbox, child.id, hard=False, trash_id=trash)

        self.each(messages, list(require(request, m("FolderIds"))), one)
        return root
