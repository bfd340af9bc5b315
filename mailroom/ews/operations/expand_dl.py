"""ExpandDL: the members of a distribution list ([MS-OXWSDLIST]). Private lists (IPM.DistList
items in the caller's store, named by ItemId) and public groups (named by address) expand one level,
as Exchange does: a nested list or group is a member with its own MailboxType (PublicDL for a
group), an external address a OneOff."""

from __future__ import annotations

import copy

from lxml import etree

from ..errors import EWSError
from ..paging import Paging, set_paging_attributes
from ..service import Operation, require
from ..xml import m, parse_fragment, sub, t
from .resolve_names import directory_mailbox


class ExpandDL(Operation):
    name = "ExpandDL"

    def execute(self, request: etree._Element) -> etree._Element:
        target = require(request, m("Mailbox"))
        root, messages = self.response()

        def one(mailbox: etree._Element, msg: etree._Element) -> None:
            id_el = mailbox.find(t("ItemId"))
            if id_el is None:
                self._public(mailbox, msg)
                return
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

    def _public(self, mailbox: etree._Element, msg: etree._Element) -> None:
        """A public group's direct members, by display name."""
        address = (mailbox.findtext(t("EmailAddress")) or "").strip()
        address = address[5:] if address[:5].lower() == "smtp:" else address
        groups = self.ctx.store.groups
        group = groups.by_address(address) if address else None
        if group is None:
            raise EWSError("ErrorNameResolutionNoResults", "No distribution list has this address.")
        expansion = sub(msg, m("DLExpansion"))
        for member in groups.members(group):
            entry = member.mailbox or member.group
            if entry is not None:
                directory_mailbox(expansion, entry, t("Mailbox"))
            else:
                one_off = sub(expansion, t("Mailbox"))
                sub(one_off, t("Name"), member.display_name)
                sub(one_off, t("EmailAddress"), member.address)
                sub(one_off, t("RoutingType"), "SMTP")
                sub(one_off, t("MailboxType"), "OneOff")
        set_paging_attributes(expansion, Paging(), len(expansion), len(expansion))
