"""GetMailTips through raw SOAP and exchangelib (which sends the MailTipsRequested list as text of
the request element rather than in its own element; Exchange answers it, so mailroom does), and
GetServiceConfiguration, on both back ends: invalid recipients in this server's domains, a
recipient's automatic reply as the sender would get it (internal or external, with its Duration
when scheduled), group member counts, and a request naming no known tip type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exchangelib import Mailbox as EwsMailbox
from exchangelib.properties import SendingAs
from exchangelib.services import GetMailTips
from exchangelib.settings import OofSettings

from .conftest import PASSWORD, make_account, new_domain, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post


def _request(sender: str, addresses: tuple[str, ...], requested: str = "All") -> bytes:
    recipients = "".join(f"<t:Mailbox><t:EmailAddress>{a}</t:EmailAddress></t:Mailbox>" for a in addresses)
    return envelope(f"<m:GetMailTips><m:SendingAs><t:EmailAddress>{sender}</t:EmailAddress></m:SendingAs>"
                    f"<m:Recipients>{recipients}</m:Recipients><m:MailTipsRequested>{requested}"
                    "</m:MailTipsRequested></m:GetMailTips>")


def _tips(server, caller: str, sender: str, *addresses: str) -> dict[str, dict[str, str | None]]:
    """Each recipient's tips: element name -> text (the reply's Message and Duration flattened)."""
    root = parse(post(server.ews_url, _request(sender, addresses), caller, PASSWORD))
    assert codes(root) == ["NoError"] * (len(addresses) + 1)  # the response's own, then one per recipient
    found = {}
    for tips in root.iterfind(".//m:MailTipsResponseMessageType/m:MailTips", NS):
        values = {child.tag.rpartition("}")[2]: child.text for child in tips}
        reply = tips.find("t:OutOfOffice", NS)
        if reply is not None:
            values["OutOfOffice"] = reply.findtext("t:ReplyBody/t:Message", default="", namespaces=NS)
            values["Duration"] = (reply.findtext("t:Duration/t:StartTime", namespaces=NS),
                                  reply.findtext("t:Duration/t:EndTime", namespaces=NS))
        found[tips.findtext("t:RecipientAddress/t:EmailAddress", namespaces=NS)] = values
    assert list(found) == list(addresses)
    return found


def test_mail_tips_for_mailboxes_groups_and_unknown_addresses(server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob Away")
    make_account(server, bob.address).oof_settings = OofSettings(
        state=OofSettings.ENABLED, external_audience="All", internal_reply="Back Monday", external_reply="Away")
    team = server_store.groups.add(f"team@{domain}", "Team")
    for member in (mailbox.address, bob.address, "partner@elsewhere.example"):
        server_store.groups.add_member(team.address, member)
    nobody, outside, me = f"nobody@{domain}", "someone@elsewhere.example", mailbox.address

    tips = _tips(server, me, me, bob.address, team.address, nobody, outside, me)
    away = tips[bob.address]
    assert away["OutOfOffice"] == "Back Monday"  # internal: the sender is in this server's domains
    assert away["Duration"] == (None, None)  # Enabled, not scheduled
    assert (away["MailboxFull"], away["TotalMemberCount"], away["InvalidRecipient"]) == ("false", "1", "false")
    assert away["MaxMessageSize"] == str(36 * 1024 * 1024)  # transport.max_message_bytes, by default
    assert (tips[team.address]["TotalMemberCount"], tips[team.address]["ExternalMemberCount"]) == ("3", "1")
    assert tips[nobody]["InvalidRecipient"] == "true" and "OutOfOffice" not in tips[nobody]
    assert tips[outside]["InvalidRecipient"] == "false"
    assert tips[me]["OutOfOffice"] == ""  # no automatic reply on
    assert _tips(server, me, "stranger@elsewhere.example", bob.address)[bob.address]["OutOfOffice"] == "Away"


def test_a_scheduled_reply_carries_its_duration(server, server_store, mailbox):
    bob = new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    end = start + timedelta(days=2)
    make_account(server, bob.address).oof_settings = OofSettings(
        state=OofSettings.SCHEDULED, external_audience="None", start=start, end=end,
        internal_reply="On leave", external_reply="Away")
    tip = _tips(server, mailbox.address, mailbox.address, bob.address)[bob.address]
    assert tip["OutOfOffice"] == "On leave"
    assert tip["Duration"] == (f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{end:%Y-%m-%dT%H:%M:%SZ}")
    external = _tips(server, mailbox.address, "x@elsewhere.example", bob.address)[bob.address]
    assert external["OutOfOffice"] == ""  # ExternalAudience None


def test_an_unknown_mail_tip_type_is_a_schema_error(server, mailbox):
    request = _request(mailbox.address, (mailbox.address,), "Everything")
    assert fault_code(parse(post(server.ews_url, request, mailbox.address, PASSWORD))) == "ErrorSchemaValidation"


def _service_configuration(server, caller: str, *names: str) -> tuple[int, object]:
    requested = "".join(f"<m:ConfigurationName>{name}</m:ConfigurationName>" for name in names)
    request = envelope(f"<m:GetServiceConfiguration><m:RequestedConfiguration>{requested}</m:RequestedConfiguration>"
                       "</m:GetServiceConfiguration>")
    response = post(server.ews_url, request, caller, PASSWORD)
    return response.status_code, parse(response)


def test_service_configuration_turns_mail_tips_on_for_this_servers_domains(server, server_store, mailbox):
    other = new_domain(server_store)
    status, root = _service_configuration(server, mailbox.address, "MailTips", "ProtectionRules",
                                          "UnifiedMessagingConfiguration SharePointURLs")
    assert status == 200 and codes(root) == ["NoError", "NoError"]
    [message] = root.iterfind(".//m:ServiceConfigurationResponseMessageType", NS)
    tips = message.find("m:MailTipsConfiguration", NS)
    assert tips.findtext("t:MailTipsEnabled", namespaces=NS) == "true"
    assert tips.findtext("t:MaxMessageSize", namespaces=NS) == str(36 * 1024 * 1024)
    domains = {d.get("Name") for d in tips.iterfind("t:InternalDomains/t:Domain", NS)}
    assert {mailbox.address.split("@", 1)[1], other} <= domains
    assert message.find("m:ProtectionRulesConfiguration/t:Rules", NS) is not None
    assert message.findtext("m:UnifiedMessagingConfiguration/t:UmEnabled", namespaces=NS) == "false"
    assert [child.tag.rpartition("}")[2] for child in message] == [
        "ResponseCode", "MailTipsConfiguration", "UnifiedMessagingConfiguration", "ProtectionRulesConfiguration",
        "SharePointURLsConfiguration"]  # in the schema's order
    status, root = _service_configuration(server, mailbox.address, "Everything")
    assert fault_code(root) == "ErrorSchemaValidation"


def test_exchangelib_gets_its_mail_tips(server, server_store, mailbox, account):
    bob = new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob")
    make_account(server, bob.address).oof_settings = OofSettings(
        state=OofSettings.ENABLED, external_audience="All", internal_reply="Back Monday", external_reply="Away")
    assert account.mail_tips.recipient_address.email_address == mailbox.address
    tips = GetMailTips(protocol=account.protocol).get(
        sending_as=SendingAs(email_address=mailbox.address), recipients=[EwsMailbox(email_address=bob.address)],
        mail_tips_requested="All")
    assert (tips.out_of_office.reply_body, tips.invalid_recipient, tips.total_member_count) == (
        "Back Monday", False, 1)
