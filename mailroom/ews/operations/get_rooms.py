"""GetRooms: the room mailboxes of one room list, by display name; a list that does not exist (or
a group that is not a room list) is ErrorNameResolutionNoResults, as on Exchange."""

from __future__ import annotations

from lxml import etree

from ..errors import EWSError
from ..rooms import RoomOperation
from ..service import require
from ..xml import m, sub, t
from .resolve_names import directory_mailbox


class GetRooms(RoomOperation):
    name = "GetRooms"

    def execute(self, request: etree._Element) -> etree._Element:
        address = (require(require(request, m("RoomList")), t("EmailAddress")).text or "").strip()
        return self.respond(lambda message: self._write(message, address))

    def _write(self, message: etree._Element, address: str) -> None:
        groups = self.ctx.store.groups
        room_list = groups.by_address(address) if address else None
        if room_list is None or not room_list.room_list:
            raise EWSError("ErrorNameResolutionNoResults", f"No room list has the address {address}.")
        rooms = sub(message, m("Rooms"))
        for room in groups.rooms(room_list):
            directory_mailbox(sub(rooms, t("Room")), room, t("Id"))
