"""GetUserOofSettings: a mailbox's automatic-reply settings ([MS-OXWOOF] 3.1.4.1). Like Exchange,
the answer always carries a Duration (the stored one, else the next day from now) and both replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import etree

from mailroom.content import oof
from mailroom.store.model import Mailbox

from ..oof import XML_LANG, OofOperation
from ..xml import m, sub, t

_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class GetUserOofSettings(OofOperation):
    name = "GetUserOofSettingsRequest"

    def execute(self, request: etree._Element) -> etree._Element:
        return self.respond(request, self._write)

    def _write(self, mailbox: Mailbox, root: etree._Element) -> None:
        settings = oof.load(self.ctx.store, mailbox)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        node = sub(root, t("OofSettings"))
        sub(node, t("OofState"), settings.state)
        sub(node, t("ExternalAudience"), settings.external_audience)
        duration = sub(node, t("Duration"))
        sub(duration, t("StartTime"), settings.start or now.strftime(_STAMP))
        sub(duration, t("EndTime"), settings.end or (now + timedelta(days=1)).strftime(_STAMP))
        for tag, text, lang in (("InternalReply", settings.internal_reply, settings.internal_lang),
                                ("ExternalReply", settings.external_reply, settings.external_lang)):
            reply = sub(node, t(tag))
            if lang:
                reply.set(XML_LANG, lang)
            sub(reply, t("Message"), text)
        sub(root, m("AllowExternalOof"), "All")
