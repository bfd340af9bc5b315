"""GetServiceConfiguration (Exchange 2010): the service settings Outlook asks for when it starts
([MS-OXWCONFIG]), in one response message. MailTips are on (GetMailTips answers them) with
Exchange's defaults for the counts and the transport's message size limit; the internal domains
are this server's accepted domains. There is no unified messaging, there are no protection or
policy nudge rules and no SharePoint sites: those are answered as present and empty, so a client
knows rather than guesses."""

from __future__ import annotations

from lxml import etree

from ..errors import SOAPFault
from ..service import Operation, require
from ..xml import bool_text, int_text, m, sub, t

MAX_RECIPIENTS_PER_GET_MAIL_TIPS = 50  # Exchange's
LARGE_AUDIENCE_THRESHOLD = 25  # Exchange's MailTipsLargeAudienceThreshold default
LARGE_AUDIENCE_CAP = 1000
PROTECTION_RULES_REFRESH_HOURS = 24
_NAMES = ("MailTips", "UnifiedMessagingConfiguration", "ProtectionRules", "PolicyNudges", "SharePointURLs",
          "OfficeIntegrationConfiguration")


class GetServiceConfiguration(Operation):
    name = "GetServiceConfiguration"
    min_version = "Exchange2010"

    def execute(self, request: etree._Element) -> etree._Element:
        wanted = set()
        for named in require(request, m("RequestedConfiguration")).iterchildren(m("ConfigurationName")):
            wanted.update((named.text or "").split())
        if not wanted or not wanted <= set(_NAMES):
            raise SOAPFault("ErrorSchemaValidation", f"{sorted(wanted)} are not service configuration names.")
        root, messages = self.nested_response()
        self.each(messages, [wanted], self._write, "ServiceConfigurationResponseMessageType")
        return root

    def _write(self, wanted: set[str], msg: etree._Element) -> None:
        """The requested configurations, in the schema's order (OfficeIntegrationConfiguration has
        no place in the response message, so it is left out)."""
        internal = [d.name for d in self.ctx.store.directory.domains()]  # read once for both lists
        if "MailTips" in wanted:
            tips = sub(msg, m("MailTipsConfiguration"))
            sub(tips, t("MailTipsEnabled"), "true")
            sub(tips, t("MaxRecipientsPerGetMailTipsRequest"), str(MAX_RECIPIENTS_PER_GET_MAIL_TIPS))
            sub(tips, t("MaxMessageSize"), int_text(self.ctx.max_message_bytes))
            sub(tips, t("LargeAudienceThreshold"), str(LARGE_AUDIENCE_THRESHOLD))
            sub(tips, t("ShowExternalRecipientCount"), "true")
            _internal_domains(tips, internal)
            sub(tips, t("PolicyTipsEnabled"), "false")
            sub(tips, t("LargeAudienceCap"), str(LARGE_AUDIENCE_CAP))
        if "UnifiedMessagingConfiguration" in wanted:
            um = sub(msg, m("UnifiedMessagingConfiguration"))
            sub(um, t("UmEnabled"), bool_text(False))
            sub(um, t("PlayOnPhoneDialString"), "")
            sub(um, t("PlayOnPhoneEnabled"), bool_text(False))
        if "ProtectionRules" in wanted:
            rules = sub(msg, m("ProtectionRulesConfiguration"), RefreshInterval=str(PROTECTION_RULES_REFRESH_HOURS))
            sub(rules, t("Rules"))
            _internal_domains(rules, internal)
        if "PolicyNudges" in wanted:
            sub(msg, m("PolicyNudgeRulesConfiguration"))
        if "SharePointURLs" in wanted:
            sites = sub(msg, m("SharePointURLsConfiguration"))
            sub(sites, t("InternalSPMySiteHostURL"), "")
            sub(sites, t("ExternalSPMySiteHostURL"), "")


def _internal_domains(parent: etree._Element, names: list[str]) -> None:
    domains = sub(parent, t("InternalDomains"))
    for name in names:
        sub(domains, t("Domain"), Name=name, IncludeSubdomains="false")
