"""Automatic replies: GetUserOofSettings / SetUserOofSettings through exchangelib, and the reply
local delivery sends (RFC 3834: once per sender per period, never to automatic or list mail)."""

from datetime import UTC, datetime, timedelta

import pytest
from exchangelib import Contact, Mailbox, Message
from exchangelib.errors import ErrorAccessDenied
from exchangelib.indexed_properties import EmailAddress
from exchangelib.settings import OofSettings

from mailroom.content import oof
from mailroom.transport.local import deliver_local

from .conftest import PASSWORD, make_account, new_domain, new_mailbox, settle_all
from .soap import codes, envelope, fault_code, parse, post


def _on(internal: str = "Away until Monday", external: str = "Away", audience: str = "All") -> OofSettings:
    return OofSettings(state=OofSettings.ENABLED, external_audience=audience,
                       internal_reply=internal, external_reply=external)


def _hour(offset: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=offset)


def test_a_new_mailbox_has_oof_disabled(account):
    settings = account.oof_settings
    assert settings.state == OofSettings.DISABLED
    assert settings.external_audience == "All"
    assert settings.start and settings.end and settings.start < settings.end


def test_set_and_get_enabled_with_html_replies(account):
    account.oof_settings = _on("<html><body><p>Back <b>Monday</b></p></body></html>", "Out of office", "Known")
    settings = account.oof_settings
    assert (settings.state, settings.external_audience) == ("Enabled", "Known")
    assert settings.internal_reply == "<html><body><p>Back <b>Monday</b></p></body></html>"
    assert settings.external_reply == "Out of office"


def test_scheduled_window_round_trips_in_utc(account):
    start, end = _hour(24), _hour(72)
    account.oof_settings = OofSettings(state=OofSettings.SCHEDULED, external_audience="None", start=start, end=end,
                                       internal_reply="Holiday", external_reply="Holiday")
    settings = account.oof_settings
    assert (settings.state, settings.external_audience) == ("Scheduled", "None")
    assert (settings.start, settings.end) == (start, end)


def _set_raw(address: str, body: str) -> str:
    return ('<m:SetUserOofSettingsRequest>'
            f'<t:Mailbox><t:Address>{address}</t:Address></t:Mailbox>'
            f'<t:UserOofSettings>{body}</t:UserOofSettings></m:SetUserOofSettingsRequest>')


def test_a_scheduled_oof_needs_an_end_after_its_start(server, mailbox, account):
    window = ("<t:OofState>Scheduled</t:OofState><t:ExternalAudience>All</t:ExternalAudience>"
              "<t:Duration><t:StartTime>2030-01-02T00:00:00Z</t:StartTime>"
              "<t:EndTime>2030-01-01T00:00:00Z</t:EndTime></t:Duration>")
    root = parse(post(server.ews_url, envelope(_set_raw(mailbox.address, window)), mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorInvalidScheduledOofDuration"]
    missing = "<t:OofState>Scheduled</t:OofState><t:ExternalAudience>All</t:ExternalAudience>"
    root = parse(post(server.ews_url, envelope(_set_raw(mailbox.address, missing)), mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorInvalidScheduledOofDuration"]
    assert account.oof_settings.state == "Disabled"


def test_another_users_mailbox_is_refused(server, server_store, mailbox, account):
    """Only the owner, or whoever impersonates it, reads or changes a mailbox's OOF settings;
    anyone else, a delegate too, gets the SOAP fault of [MS-OXWOOF] 3.1.4.1."""
    domain = mailbox.address.split("@", 1)[1]
    bob = new_mailbox(server_store, domain, "bob", "Bob")
    bob_account = make_account(server, bob.address)
    bob_account.oof_settings = _on()
    add = (f"<m:AddDelegate><m:Mailbox><t:EmailAddress>{bob.address}</t:EmailAddress></m:Mailbox>"
           f"<m:DelegateUsers><t:DelegateUser><t:UserId><t:PrimarySmtpAddress>{mailbox.address}"
           "</t:PrimarySmtpAddress></t:UserId><t:DelegatePermissions><t:InboxFolderPermissionLevel>Editor"
           "</t:InboxFolderPermissionLevel></t:DelegatePermissions></t:DelegateUser></m:DelegateUsers></m:AddDelegate>")
    post(server.ews_url, envelope(add, version="Exchange2010_SP2"), bob.address, PASSWORD)
    from exchangelib.services import GetUserOofSettings, SetUserOofSettings
    with pytest.raises(ErrorAccessDenied):
        GetUserOofSettings(account=account).get(mailbox=Mailbox(email_address=bob.address))
    with pytest.raises(ErrorAccessDenied):
        SetUserOofSettings(account=account).get(oof_settings=OofSettings(state="Disabled"),
                                                mailbox=Mailbox(email_address=bob.address))
    get_bob = (f"<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>{bob.address}</t:Address></t:Mailbox>"
               "</m:GetUserOofSettingsRequest>")
    response = post(server.ews_url, envelope(get_bob), mailbox.address, PASSWORD)
    assert response.status_code == 500 and fault_code(parse(response)) == "ErrorAccessDenied"
    assert b"Away until Monday" not in response.content
    assert bob_account.oof_settings.state == "Enabled"
    get = ('<m:GetUserOofSettingsRequest><t:Mailbox><t:Address>nobody@nowhere.example</t:Address></t:Mailbox>'
           '</m:GetUserOofSettingsRequest>')
    root = parse(post(server.ews_url, envelope(get), mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorMailRecipientNotFound"]


def test_an_impersonating_account_reads_and_changes_the_owners_oof(server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    service = new_mailbox(server_store, domain, "svc", "Service")
    server_store.directory.grant_impersonation(service.address, f"mailboxes:{mailbox.address}")
    as_owner = make_account(server, mailbox.address, impersonator=service.address)
    as_owner.oof_settings = _on(internal="Set by the service")
    assert make_account(server, mailbox.address).oof_settings.internal_reply == "Set by the service"
    assert as_owner.oof_settings.state == OofSettings.ENABLED


# -- automatic replies ---------------------------------------------------------------------------
def _replies(account) -> list:
    return list(account.inbox.filter(subject__startswith="Automatic reply"))


@pytest.fixture
def bob(server, server_store, mailbox):
    bob = new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob", "Bob Builder")
    return make_account(server, bob.address)


def _send(account, to, subject: str) -> None:
    Message(account=account, subject=subject, body="Hello", to_recipients=[Mailbox(email_address=to)]).send()
    settle_all()  # the transport delivers after the send returns


def test_one_automatic_reply_per_sender(account, bob):
    bob.oof_settings = _on("<p>I am out until <b>Monday</b></p>")
    _send(account, bob.primary_smtp_address, "First")
    _send(account, bob.primary_smtp_address, "Second")
    [reply] = _replies(account)
    assert reply.subject == "Automatic reply: First"
    assert reply.author.email_address == bob.primary_smtp_address
    assert "I am out until Monday" in reply.text_body
    headers = {h.name.lower(): h.value for h in reply.headers}
    assert headers["auto-submitted"] == "auto-replied"
    assert headers["in-reply-to"] == bob.inbox.get(subject="First").message_id
    assert bob.inbox.filter(subject__startswith="Automatic reply").count() == 0  # no reply to the reply
    assert bob.inbox.all().count() == 2


def test_new_settings_start_a_new_period_and_disabling_stops_replies(account, bob):
    bob.oof_settings = _on()
    _send(account, bob.primary_smtp_address, "One")
    bob.oof_settings = _on("Still away")
    _send(account, bob.primary_smtp_address, "Two")
    assert sorted(r.subject for r in _replies(account)) == ["Automatic reply: One", "Automatic reply: Two"]
    bob.oof_settings = OofSettings(state=OofSettings.DISABLED)
    _send(account, bob.primary_smtp_address, "Three")
    assert len(_replies(account)) == 2


def test_a_scheduled_oof_answers_only_inside_its_window(account, bob):
    bob.oof_settings = OofSettings(state=OofSettings.SCHEDULED, external_audience="All", start=_hour(24),
                                   end=_hour(48), internal_reply="Later", external_reply="Later")
    _send(account, bob.primary_smtp_address, "Too early")
    assert _replies(account) == []
    bob.oof_settings = OofSettings(state=OofSettings.SCHEDULED, external_audience="All", start=_hour(-1),
                                   end=_hour(48), internal_reply="Now", external_reply="Now")
    _send(account, bob.primary_smtp_address, "In time")
    assert [r.subject for r in _replies(account)] == ["Automatic reply: In time"]


@pytest.mark.parametrize("header", ["Auto-Submitted: auto-generated", "Precedence: bulk", "Precedence: list",
                                    "List-Id: <news.example.org>"])
def test_automatic_and_list_mail_gets_no_reply(account, bob, header):
    bob.oof_settings = _on()
    mime = (f"From: {account.primary_smtp_address}\r\nTo: {bob.primary_smtp_address}\r\nSubject: Newsletter\r\n"
            f"{header}\r\nContent-Type: text/plain\r\n\r\nNews\r\n").encode()
    Message(account=account, mime_content=mime).send()
    settle_all()
    assert bob.inbox.filter(subject="Newsletter").count() == 1
    assert _replies(account) == []


def test_external_audience(server, server_store, mailbox, bob):
    """Senders outside this server's domains are external: whether they get a reply depends on
    ExternalAudience, and each one answered is remembered (the reply itself leaves through the
    transport: test_transport_routing)."""
    bob.oof_settings = _on(audience="None")
    me = server_store.directory.mailbox_by_address(bob.primary_smtp_address)

    def deliver(sender: str, subject: str) -> tuple[str, ...]:
        raw = f"From: {sender}\r\nTo: {me.address}\r\nSubject: {subject}\r\n\r\nHi\r\n".encode()
        deliver_local(server_store, raw, [me.address])
        return oof.load(server_store, me).answered

    assert deliver("carol@remote.example", "Nobody outside") == ()
    Contact(account=bob, folder=bob.contacts, display_name="Carol",
            email_addresses=[EmailAddress(label="EmailAddress1", email="carol@remote.example")]).save()
    bob.oof_settings = _on(audience="Known")
    assert deliver("dave@remote.example", "Unknown") == ()
    assert deliver("carol@remote.example", "Known") == ("carol@remote.example",)
    bob.oof_settings = _on(audience="All")
    assert deliver("dave@remote.example", "Anyone") == ("dave@remote.example",)
    other = new_mailbox(server_store, new_domain(server_store), "erin")
    assert deliver(other.address, "Another accepted domain") == ("dave@remote.example", other.address)
    assert deliver("MAILER-DAEMON@remote.example", "Bounce") == ("dave@remote.example", other.address)
