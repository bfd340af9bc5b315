"""ExpandDL: the members of a distribution list ([MS-OXWSDLIST]). Private lists (IPM.DistList
items in the caller's store, named by ItemId) expand one level, as Exchange does: a nested list is
a member with its own MailboxType. The directory has no public groups yet, so an address never
names one and is answered with ErrorNameResolutionNoResults."""

from __future__ import annotations

import copy

from lxml import etree

from ..errors import EWSError
from ..paging import Paging, set_paging_attributes
from ..service import Operation, require
from ..xml import m, parse_fragment, sub, t


class ExpandDL(Operation):
    name = "ExpandDL"

    def execute(self, request: etree._Element) -> etree._Element:
        target = require(request, m("Mailbox"))
        root, messages = self.response()

        def one(mailbox: etree._Element, msg: etree._Element) -> None:
            id_el = mailbox.find(t("ItemId"))
            if id_el is None:
                raise EWSError("ErrorNameResolutionNoResults", "No distribution list has this address.")
            _, item = self.item_from(id_el, body=False)
            if not item.item_class.startswith("IPM.DistList"):
                raise EWSError("ErrorNameResolutionNoResults", "The item is not a distribution list.")
            stored = item.props.get("Members")
            members = parse_fragment(stored).iterfind(f"{t('Member')}/{t('Mailbox')}") if stored else []
            expansion = sub(msg, m("DLExpansion"))
            for member in members:
                expansion.append(copy.deepcopy(member))
            set_paging_attributes(expansion, Paging(), len(expansion), len(expansion))

        self.each(messages, [target], one)
        return root
