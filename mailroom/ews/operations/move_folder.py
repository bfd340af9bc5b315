"""MoveFolder: put folders, with their subfolders and items, under another parent. A moved folder
keeps its id (clients such as exchangelib check that)."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store import errors as store_errors
from mailroom.store.model import Folder, Mailbox

from ..errors import EWSError
from ..folders import render_id, target_folder
from ..service import Operation, require
from ..xml import m


class MoveFolder(Operation):
    name = "MoveFolder"
    source_need = Access.OWN_FOLDER

    def execute(self, request: etree._Element) -> etree._Element:
        to_el = require(request, m("ToFolderId"))
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(id_el, self.source_need)
            to_mailbox, target = target_folder(self.folder_from, to_el, "ErrorToFolderNotFound",
                                               Access.CREATE_SUBFOLDER)
            if to_mailbox.id != mailbox.id:
                raise EWSError("ErrorCrossMailboxMoveCopy", "Folders cannot be moved or copied to another mailbox.")
            try:
                result = self.transfer(mailbox, folder, target.id)
            except store_errors.InvalidOperation as exc:
                raise EWSError("ErrorMoveCopyFailed", str(exc)) from exc
            render_id(msg, mailbox, result)

        self.each(messages, list(require(request, m("FolderIds"))), one)
        return root

    def transfer(self, mailbox: Mailbox, folder: Folder, to_parent: int) -> Folder:
        """Move ``folder`` under ``to_parent``; returns it as it is now."""
        if folder.distinguished_id:
            raise EWSError("ErrorMoveDistinguishedFolder", "Distinguished folders cannot be moved.")
        return self.ctx.store.folders.move(mailbox, folder.id, to_parent)
