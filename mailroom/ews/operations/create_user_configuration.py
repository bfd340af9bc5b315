"""CreateUserConfiguration (Exchange 2010): a new user configuration object on a folder; one of
the same name there already is ErrorItemSave."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import config_items

from .. import user_configurations as configs
from ..errors import EWSError
from ..service import Operation, require
from ..xml import m, t


class CreateUserConfiguration(Operation):
    name = "CreateUserConfiguration"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        config = require(request, m("UserConfiguration"))
        root, messages = self.response()

        def one(_config: etree._Element, _msg: etree._Element) -> None:
            mailbox, folder, name = configs.named(self, require(config, t("UserConfigurationName")), Access.CREATE)
            props = configs.read_properties(config, self.ctx.tz)
            if configs.find(self, mailbox, folder, name) is not None:
                raise EWSError("ErrorItemSave", f"The folder already has a user configuration object named {name}.")
            config_items.create(self.ctx.store, mailbox, configs.CLASS_PREFIX + name, props, folder.id,
                                created_by=self.ctx.mailbox.id)

        self.each(messages, [config], one)
        return root
