"""GetRoomLists: the organization's room lists (groups created with ``group add --room-list``),
as Exchange answers it: each an EmailAddressType with MailboxType PublicDL."""

from __future__ import annotations

from lxml import etree

from ..rooms import RoomOperation
from ..xml import m, sub, t
from .resolve_names import directory_mailbox


class GetRoomLists(RoomOperation):
    name = "GetRoomLists"

    def execute(self, request: etree._Element) -> etree._Element:
        return self.respond(self._write)

    def _write(self, message: etree._Element) -> None:
        lists = sub(message, m("RoomLists"))
        for room_list in self.ctx.store.groups.list(room_lists_only=True):
            directory_mailbox(lists, room_list, t("Address"))
