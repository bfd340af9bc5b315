"""UpdateUserConfiguration (Exchange 2010): replace the Dictionary, XmlData or BinaryData of a
user configuration object (each one the request gives; the others stay)."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store.model import ItemChanges

from .. import user_configurations as configs
from ..service import Operation, require
from ..xml import m, t


class UpdateUserConfiguration(Operation):
    name = "UpdateUserConfiguration"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        config = require(request, m("UserConfiguration"))
        root, messages = self.response()

        def one(_config: etree._Element, _msg: etree._Element) -> None:
            mailbox, folder, name = configs.named(self, require(config, t("UserConfigurationName")), Access.SEE_FOLDER)
            props = configs.read_properties(config, self.ctx.tz)
            item = configs.existing(self, mailbox, folder, name)
            self.authorize(mailbox, folder.id, Access.EDIT, item)
            self.ctx.store.items.update(mailbox, item.id, ItemChanges(set_props=props))

        self.each(messages, [config], one)
        return root
