"""GetFolder: folders by id or distinguished name."""

from lxml import etree

from ..folders import render, viewer
from ..paths import Shape
from ..service import Operation, require
from ..xml import m, sub


class GetFolder(Operation):
    name = "GetFolder"

    def execute(self, request: etree._Element) -> etree._Element:
        shape = Shape.parse(request.find(m("FolderShape")))
        root, messages = self.response()

        def one(folder_el: etree._Element, msg: etree._Element) -> None:
            mailbox, folder = self.folder_from(folder_el)
            render(sub(msg, m("Folders")), mailbox, folder, shape, viewer(self, mailbox, folder))

        self.each(messages, list(require(request, m("FolderIds"))), one)
        return root
