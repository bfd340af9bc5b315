"""SetUserOofSettings: change a mailbox's automatic replies ([MS-OXWOOF] 3.1.4.2). Elements the
request leaves out keep their stored value; a Scheduled state needs a Duration that ends after
it starts. The meeting-decline and OOF-event options are accepted and not acted on."""

from __future__ import annotations

from dataclasses import replace

from lxml import etree

from mailroom.content import oof
from mailroom.store.model import Mailbox

from ..dates import to_utc_text
from ..errors import EWSError, SOAPFault
from ..oof import XML_LANG, OofOperation
from ..schema import schema
from ..service import require
from ..xml import t


class SetUserOofSettings(OofOperation):
    name = "SetUserOofSettingsRequest"

    def execute(self, request: etree._Element) -> etree._Element:
        node = require(request, t("UserOofSettings"))
        return self.respond(request, lambda mailbox, _root: self._save(mailbox, node))

    def _save(self, mailbox: Mailbox, node: etree._Element) -> None:
        settings = oof.load(self.ctx.store, mailbox)
        changes = {"state": _choice(node, "OofState"), "external_audience": _choice(node, "ExternalAudience")}
        duration = node.find(t("Duration"))
        if duration is not None:
            changes["start"] = to_utc_text(require(duration, t("StartTime")).text or "", self.ctx.tz)
            changes["end"] = to_utc_text(require(duration, t("EndTime")).text or "", self.ctx.tz)
        for name in ("internal", "external"):
            reply = node.find(t(f"{name.capitalize()}Reply"))
            if reply is not None:
                changes[f"{name}_reply"] = reply.findtext(t("Message")) or ""
                changes[f"{name}_lang"] = reply.get(XML_LANG)
        settings = replace(settings, **changes)
        if settings.state == "Scheduled" and not (settings.start and settings.end and settings.start < settings.end):
            raise EWSError("ErrorInvalidScheduledOofDuration", "A scheduled OOF needs an end time after its start.")
        oof.save(self.ctx.store, mailbox, settings)


def _choice(node: etree._Element, tag: str) -> str:
    value = (require(node, t(tag)).text or "").strip()
    if value not in schema().enumeration(tag):
        raise SOAPFault("ErrorSchemaValidation", f"{value!r} is not a valid {tag}.")
    return value
