"""What GetRoomLists and GetRooms share: their response element is itself the response message
(ResponseClass, ResponseCode, then the payload), with no ResponseMessages wrapper."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from .errors import EWSError
from .service import Operation
from .xml import M, T, m


class RoomOperation(Operation):
    """Base of the two room operations (not registered itself: it has no name)."""

    min_version = "Exchange2010"

    def respond(self, handle: Callable[[etree._Element], None]) -> etree._Element:
        """The response, a Success message ``handle`` fills (or an Error when it raises EWSError)."""
        body = self.parent if self.parent is not None else etree.Element(m("Body"), nsmap={"m": M, "t": T})
        name = f"{self.name}Response"
        message = self.success(body, name)
        try:
            handle(message)
        except EWSError as err:
            body.remove(message)
            message = self.error(body, err, name)
        return message
