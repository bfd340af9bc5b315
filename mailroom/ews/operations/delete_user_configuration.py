"""DeleteUserConfiguration (Exchange 2010): remove a user configuration object from its folder."""

from lxml import etree

from mailroom.access.permissions import Access

from .. import user_configurations as configs
from ..service import Operation, require
from ..xml import m


class DeleteUserConfiguration(Operation):
    name = "DeleteUserConfiguration"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        name_el = require(request, m("UserConfigurationName"))
        root, messages = self.response()

        def one(_name: etree._Element, _msg: etree._Element) -> None:
            mailbox, folder, name = configs.named(self, name_el, Access.SEE_FOLDER)
            item = configs.existing(self, mailbox, folder, name)
            self.authorize(mailbox, folder.id, Access.DELETE, item)
            self.ctx.store.items.delete(mailbox, item.id)

        self.each(messages, [name_el], one)
        return root
