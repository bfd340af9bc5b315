"""GetServerTimeZones (Exchange 2010 on): the Windows time zones the server knows, by id, with
their full definitions unless ReturnFullTimeZoneData is false."""

from lxml import etree

from .. import timezones
from ..errors import EWSError
from ..service import Operation, boolean
from ..xml import m, sub, t


class GetServerTimeZones(Operation):
    name = "GetServerTimeZones"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        full = boolean(request.get("ReturnFullTimeZoneData", "true"), "ReturnFullTimeZoneData")
        ids = request.find(m("Ids"))
        wanted = timezones.windows_ids() if ids is None else [(i.text or "").strip() for i in ids.iter(t("Id"))]
        root, messages = self.response()

        def one(windows_ids: list[str], msg: etree._Element) -> None:
            known = set(timezones.windows_ids())
            unknown = [i for i in windows_ids if i not in known]
            if unknown:
                raise EWSError("ErrorTimeZone", f"The time zone {unknown[0]!r} is not known to this server.")
            holder = sub(msg, m("TimeZoneDefinitions"))
            for windows_id in windows_ids:
                timezones.definition(holder, windows_id, full)

        self.each(messages, [wanted], one)
        return root
