"""FindFolder: child folders (Shallow) or the whole subtree (Deep), with restrictions and paging."""

from lxml import etree

from ..errors import SOAPFault
from ..folders import render, viewer
from ..paging import budgeted, parse_paging, set_paging_attributes
from ..paths import Shape
from ..restrictions import parse_restriction
from ..service import Operation, require
from ..xml import m, sub, t


class FindFolder(Operation):
    name = "FindFolder"

    def execute(self, request: etree._Element) -> etree._Element:
        traversal = request.get("Traversal") or "Shallow"
        if traversal not in ("Shallow", "Deep", "SoftDeleted"):
            raise SOAPFault("ErrorSchemaValidation", f"Traversal {traversal!r} is not valid.")
        shape = Shape.parse(request.find(m("FolderShape")))
        paging = parse_paging(request)
        where = parse_restriction(request.find(m("Restriction")), self.ctx, folders=True)
        root, messages = self.response()

        def one(parent_el: etree._Element, msg: etree._Element) -> None:
            mailbox, parent = self.folder_from(parent_el)
            found, total = [], 0
            if traversal != "SoftDeleted":  # nothing is kept soft-deleted at folder level
                found, total = self.ctx.store.folders.find(
                    mailbox, parent.id, deep=traversal == "Deep", where=where, page=budgeted(paging, self.ctx),
                    extended_keys=bool(shape.extended), visible_to=self.folder_viewer(mailbox))
            container = sub(msg, m("RootFolder"))
            set_paging_attributes(container, paging, len(found), total)
            folders = sub(container, t("Folders"))
            for folder in found:
                render(folders, mailbox, folder, shape, viewer(self, mailbox, folder))

        self.each(messages, list(require(request, m("ParentFolderIds"))), one)
        return root
