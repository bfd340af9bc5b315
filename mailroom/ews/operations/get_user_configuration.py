"""GetUserConfiguration (Exchange 2010): a folder's user configuration object, with the properties
UserConfigurationProperties names."""

from lxml import etree

from mailroom.access.permissions import Access

from .. import user_configurations as configs
from ..service import Operation, require
from ..xml import m


class GetUserConfiguration(Operation):
    name = "GetUserConfiguration"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        name_el = require(request, m("UserConfigurationName"))
        properties = require(request, m("UserConfigurationProperties")).text
        root, messages = self.response()

        def one(_request: etree._Element, msg: etree._Element) -> None:
            wanted = configs.wanted_properties(properties)
            mailbox, folder, name = configs.named(self, name_el, Access.READ)
            configs.write(self, msg, mailbox, folder, configs.existing(self, mailbox, folder, name), wanted)

        self.each(messages, [request], one)
        return root
