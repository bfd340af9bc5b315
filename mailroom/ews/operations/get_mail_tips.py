"""GetMailTips (Exchange 2010): what a client shows about each recipient while a message is being
written, from this server's directory: an address in one of its domains that nothing answers to
(InvalidRecipient), the recipient's automatic reply as the sender (SendingAs) would get it, with
its Duration when scheduled, a group's member counts (all, and outside this server's domains)
and the transport's message size limit (``transport.max_message_bytes``). Mailboxes are never
full, messages never restricted or moderated; there are no custom mail tips."""

from __future__ import annotations

from datetime import UTC, datetime

from lxml import etree

from mailroom.content import oof
from mailroom.store.model import Mailbox

from ..errors import SOAPFault
from ..oof import XML_LANG
from ..service import Operation, require
from ..xml import bool_text, int_text, m, sub, t

ANSWERED = ("OutOfOfficeMessage", "MailboxFullStatus", "TotalMemberCount", "ExternalMemberCount",
            "MaxMessageSize", "DeliveryRestriction", "ModerationStatus", "InvalidRecipient")
_KNOWN = {"All", *ANSWERED, "CustomMailTip", "Scope", "RecipientSuggestions", "PreferAccessibleContent"}


class GetMailTips(Operation):
    name = "GetMailTips"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        sender = (require(require(request, m("SendingAs")), t("EmailAddress")).text or "").strip()
        requested = next(request.iterchildren(m("MailTipsRequested")), None)
        # exchangelib sends the list as the request element's own text, and Exchange answers it
        wanted = _wanted(requested.text if requested is not None else (request.text or "").strip() or "All")
        recipients = list(require(request, m("Recipients")))
        root, messages = self.nested_response()  # one message per recipient

        def one(recipient: etree._Element, msg: etree._Element) -> None:
            self._tips(sub(msg, m("MailTips")), (recipient.findtext(t("EmailAddress")) or "").strip(), sender, wanted)

        self.each(messages, recipients, one, "MailTipsResponseMessageType")
        return root

    def _tips(self, tips: etree._Element, address: str, sender: str, wanted: set[str]) -> None:
        """The recipient's MailTips, in the schema's order."""
        directory = self.ctx.store.directory
        mailbox = directory.lookup(address)
        group = self.ctx.store.groups.by_address(address) if mailbox is None else None
        shown = sub(tips, t("RecipientAddress"))
        name = mailbox.display_name if mailbox else group.display_name if group else None
        if name:
            sub(shown, t("Name"), name)
        sub(shown, t("EmailAddress"), address)
        sub(shown, t("RoutingType"), "SMTP")
        sub(tips, t("PendingMailTips"), "")
        if "OutOfOfficeMessage" in wanted and mailbox is not None:
            self._out_of_office(sub(tips, t("OutOfOffice")), mailbox, sender)
        if "MailboxFullStatus" in wanted and mailbox is not None:
            sub(tips, t("MailboxFull"), "false")
        counted = {"TotalMemberCount", "ExternalMemberCount"} & wanted
        members = self.ctx.store.groups.expand(group).addresses if group is not None and counted else [address]
        if "TotalMemberCount" in wanted:
            sub(tips, t("TotalMemberCount"), str(len(members)))
        if "ExternalMemberCount" in wanted:
            external = [a for a in members if not directory.accepts(a.rpartition("@")[2])] if group else []
            sub(tips, t("ExternalMemberCount"), str(len(external)))
        if "MaxMessageSize" in wanted:
            sub(tips, t("MaxMessageSize"), int_text(self.ctx.max_message_bytes))
        if "DeliveryRestriction" in wanted:
            sub(tips, t("DeliveryRestricted"), "false")
        if "ModerationStatus" in wanted:
            sub(tips, t("IsModerated"), "false")
        if "InvalidRecipient" in wanted:
            local, at, domain = address.rpartition("@")
            invalid = not (local and at) or (mailbox is None and group is None and directory.accepts(domain))
            sub(tips, t("InvalidRecipient"), bool_text(invalid))

    def _out_of_office(self, node: etree._Element, mailbox: Mailbox, sender: str) -> None:
        """The reply the sender would get now: empty when OOF is off or does not answer the sender."""
        settings = oof.load(self.ctx.store, mailbox)
        active = settings.active(datetime.now(UTC))
        reply = oof.reply_to(self.ctx.store, mailbox, settings, sender) if active else None
        body = sub(node, t("ReplyBody"))
        lang = settings.internal_lang if reply == settings.internal_reply else settings.external_lang
        if reply and lang:
            body.set(XML_LANG, lang)
        sub(body, t("Message"), reply or "")
        if reply is not None and settings.state == "Scheduled" and settings.start and settings.end:
            duration = sub(node, t("Duration"))
            sub(duration, t("StartTime"), settings.start)
            sub(duration, t("EndTime"), settings.end)


def _wanted(text: str | None) -> set[str]:
    given = set((text or "").split())
    if not given or not given <= _KNOWN:
        raise SOAPFault("ErrorSchemaValidation", f"MailTipsRequested {text!r} is not a list of mail tip types.")
    return set(ANSWERED) if "All" in given else given
