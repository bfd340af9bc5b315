"""DeleteFolder: remove folders with their contents, or move them to Deleted Items or the dumpster."""

from lxml import etree

from mailroom.access.permissions import Access

from ..errors import EWSError
from ..folders import disposal, trash_id
from ..service import Operation, require
from ..xml import m


class DeleteFolder(Operation):
    name = "DeleteFolder"

    def execute(self, request: etree._Element) -> etree._Element:
        delete_type = disposal(request)
        root, messages = self.response()

        def one(id_el: etree._Element, _msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(id_el, Access.OWN_FOLDER)
            if folder.distinguished_id:
                raise EWSError("ErrorDeleteDistinguishedFolder")
            trash = trash_id(self.ctx.store, mailbox, delete_type, source=folder.id)
            self.ctx.store.folders.delete(mailbox, folder.id, hard=trash is None, trash_id=trash)

        self.each(messages, list(require(request, m("FolderIds"))), one)
        return root
