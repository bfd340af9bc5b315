"""CreateFolder: new folders under one parent, each answered with its FolderId."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store.permissions import is_calendar

from ..errors import EWSError
from ..folders import parse_new, render_id, target_folder
from ..permissions import parse_set
from ..service import Operation, require
from ..xml import local, m, t


class CreateFolder(Operation):
    name = "CreateFolder"

    def execute(self, request: etree._Element) -> etree._Element:
        parent_el = require(request, m("ParentFolderId"))
        root, messages = self.response()

        def one(node: etree._Element, msg: etree._Element) -> None:
            if local(node.tag) == "SearchFolder":
                raise EWSError("ErrorInvalidOperation", "Search folders are not supported by this server.")
            display_name, folder_class, ext = parse_new(node)
            perm_el = node.find(t("PermissionSet"))
            perms = None if perm_el is None else parse_set(perm_el, self.ctx.store, is_calendar(folder_class))
            mailbox, parent = target_folder(self.folder_from, parent_el, "ErrorParentFolderNotFound",
                                           Access.CREATE_SUBFOLDER)
            created = self.ctx.store.folders.create(mailbox, parent.id, display_name, folder_class, ext, perms)
            render_id(msg, mailbox, created)

        self.each(messages, list(require(request, m("Folders"))), one)
        return root
