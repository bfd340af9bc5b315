"""Meeting messages of a mailbox with delegates, end to end through the transport and exchangelib:
copies for the delegates that receive them (IsDelegated, ReceivedRepresenting the principal), the
principal's own copy as DeliverMeetingRequests says, and a delegate accepting for the principal
(the principal's calendar updated, the reply to the organizer from the principal, sent by the
delegate); on both back ends."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import icalendar
import pytest
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorAccessDenied
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, MeetingCancellation, MeetingRequest, MeetingResponse

from mailroom.content.meetings import calendar_part
from mailroom.store.model import Mailbox

from .conftest import PASSWORD, make_account, new_domain, new_mailbox
from .soap import NS, envelope, parse, post

ZONE = EWSTimeZone("Europe/Berlin")


@pytest.fixture
def people(server_store):  # noqa: ANN201
    domain = new_domain(server_store)
    return (new_mailbox(server_store, domain, "olga", "Olga Organizer"),
            new_mailbox(server_store, domain, "pia", "Pia Principal"),
            new_mailbox(server_store, domain, "dan", "Dan Delegate"),
            new_mailbox(server_store, domain, "eve", "Eve Delegate"))


def add_delegates(server, principal: Mailbox, delegates: dict[Mailbox, str], deliver: str | None) -> None:  # noqa: ANN001
    """Make each a delegate with Editor on the Calendar; ``True``/``False`` receive copies."""
    users = "".join(
        f"<t:DelegateUser><t:UserId><t:PrimarySmtpAddress>{d.address}</t:PrimarySmtpAddress></t:UserId>"
        "<t:DelegatePermissions><t:CalendarFolderPermissionLevel>Editor</t:CalendarFolderPermissionLevel>"
        "<t:InboxFolderPermissionLevel>Reviewer</t:InboxFolderPermissionLevel></t:DelegatePermissions>"
        f"<t:ReceiveCopiesOfMeetingMessages>{copies}</t:ReceiveCopiesOfMeetingMessages></t:DelegateUser>"
        for d, copies in delegates.items())
    setting = f"<m:DeliverMeetingRequests>{deliver}</m:DeliverMeetingRequests>" if deliver else ""
    body = (f"<m:AddDelegate><m:Mailbox><t:EmailAddress>{principal.address}</t:EmailAddress></m:Mailbox>"
            f"<m:DelegateUsers>{users}</m:DelegateUsers>{setting}</m:AddDelegate>")
    root = parse(post(server.ews_url, envelope(body, version="Exchange2010_SP2"), principal.address, PASSWORD))
    assert {c.text for c in root.iterfind(".//m:ResponseCode", NS)} == {"NoError"}


def invite(server, organizer: Mailbox, attendee: Mailbox, subject: str,  # noqa: ANN001
           *others: Mailbox) -> CalendarItem:
    account = make_account(server, organizer.address)
    start = EWSDateTime(2031, 5, 5, 10, 0, tzinfo=ZONE)
    item = CalendarItem(account=account, folder=account.calendar, subject=subject, start=start,
                        end=start + timedelta(hours=1), location="Room 7", body="Agenda",
                        required_attendees=[Attendee(mailbox=a.address, response_type="Unknown")
                                            for a in (attendee, *others)])
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()
    return item


def requests_in(folder, subject: str) -> list[MeetingRequest]:  # noqa: ANN001
    return [m for m in folder.filter(subject=subject) if isinstance(m, MeetingRequest)]


def test_a_delegate_gets_a_copy_and_accepts_for_the_principal(server, server_store, people):
    olga, pia, dan, eve = people
    add_delegates(server, pia, {dan: "true", eve: "false"}, None)  # DelegatesAndSendInformationToMe
    invite(server, olga, pia, "Budget")

    as_dan, as_pia = make_account(server, dan.address), make_account(server, pia.address)
    [copy] = requests_in(as_dan.inbox, "Budget")
    assert copy.is_delegated
    assert copy.received_representing.email_address == pia.address
    assert copy.received_by.email_address == dan.address
    assert copy.response_objects.accept_item is not None
    assert requests_in(make_account(server, eve.address).inbox, "Budget") == []  # no copies for Eve
    assert list(as_dan.calendar.all()) == []  # the delegate's own calendar is not touched

    [own] = requests_in(as_pia.inbox, "Budget")  # the principal's copy is for information only
    assert own.meeting_request_type == "PrincipalWantsCopy" and not own.is_delegated
    assert own.response_objects is None or own.response_objects.accept_item is None
    [tentative] = list(as_pia.calendar.all())
    assert tentative.my_response_type == "NoResponseReceived"

    copy.accept()  # Dan answers for Pia
    server.settle()
    assert as_pia.calendar.get(id=tentative.id).my_response_type == "Accept"
    assert requests_in(as_dan.inbox, "Budget") == []  # the copy is done with
    [sent] = [m for m in as_dan.sent.all() if isinstance(m, MeetingResponse)]
    assert sent.author.email_address == pia.address and sent.sender.email_address == dan.address

    as_olga = make_account(server, olga.address)
    [meeting] = list(as_olga.calendar.filter(subject="Budget"))
    assert [(a.mailbox.email_address, a.response_type) for a in meeting.required_attendees] == [
        (pia.address, "Accept")]
    [reply] = [m for m in as_olga.inbox.all() if isinstance(m, MeetingResponse)]
    assert reply.author.email_address == pia.address  # from the principal, on behalf of...
    assert reply.sender.email_address == dan.address  # ...the delegate
    [event] = icalendar.Calendar.from_ical(calendar_part(reply.mime_content)).walk("VEVENT")
    attendee = event["attendee"]  # the principal answers, the delegate sent it (RFC 5545 SENT-BY)
    assert str(attendee) == f"mailto:{pia.address}" and attendee.params["SENT-BY"] == f"mailto:{dan.address}"
    # The organizer's response also reaches nobody else: it was the principal's answer.
    assert [m for m in as_pia.inbox.all() if isinstance(m, MeetingResponse)] == []


def test_a_delegate_without_calendar_rights_cannot_accept(server, server_store, people):
    olga, pia, dan, _eve = people
    add_delegates(server, pia, {dan: "true"}, "DelegatesAndMe")
    invite(server, olga, pia, "Review")
    as_dan = make_account(server, dan.address)
    [copy] = requests_in(as_dan.inbox, "Review")
    body = (f"<m:UpdateDelegate><m:Mailbox><t:EmailAddress>{pia.address}</t:EmailAddress></m:Mailbox>"
            f"<m:DelegateUsers><t:DelegateUser><t:UserId><t:PrimarySmtpAddress>{dan.address}"
            "</t:PrimarySmtpAddress></t:UserId><t:DelegatePermissions><t:CalendarFolderPermissionLevel>Reviewer"
            "</t:CalendarFolderPermissionLevel></t:DelegatePermissions></t:DelegateUser></m:DelegateUsers>"
            "</m:UpdateDelegate>")
    parse(post(server.ews_url, envelope(body, version="Exchange2010_SP2"), pia.address, PASSWORD))
    with pytest.raises(ErrorAccessDenied):
        copy.accept()
    [tentative] = list(make_account(server, pia.address).calendar.all())
    assert tentative.my_response_type == "NoResponseReceived"


@pytest.mark.parametrize(("deliver", "principal_folder", "copied", "request_type"), [
    ("DelegatesOnly", "trash", True, "NewMeetingRequest"),
    ("DelegatesAndMe", "inbox", True, "NewMeetingRequest"),
    ("DelegatesAndSendInformationToMe", "inbox", True, "PrincipalWantsCopy"),
    ("NoForward", "inbox", False, "NewMeetingRequest"),
])
def test_deliver_meeting_requests(server, server_store, people, deliver, principal_folder, copied, request_type):
    olga, pia, dan, _eve = people
    add_delegates(server, pia, {dan: "true"}, deliver)
    item = invite(server, olga, pia, "Sync")
    as_pia, as_dan = make_account(server, pia.address), make_account(server, dan.address)
    [own] = requests_in(getattr(as_pia, principal_folder), "Sync")
    assert own.meeting_request_type == request_type
    other = as_pia.inbox if principal_folder == "trash" else as_pia.trash
    assert requests_in(other, "Sync") == []
    assert len(requests_in(as_dan.inbox, "Sync")) == (1 if copied else 0)
    assert len(list(as_pia.calendar.all())) == 1  # the principal's calendar has the meeting either way

    item.cancel()  # cancellations are delegated alike
    server.settle()
    cancelled = [m for m in as_dan.inbox.all() if isinstance(m, MeetingCancellation)]
    assert len(cancelled) == (1 if copied else 0)
    if copied:
        assert cancelled[0].received_representing.email_address == pia.address


def test_a_delegate_who_is_also_an_attendee_gets_both_copies_exactly_once(server, server_store, people):
    """The delegate's own copy and its copy for the principal share a Message-ID; each is delivered
    once, and delivering the same message again adds neither."""
    olga, pia, dan, _eve = people
    add_delegates(server, pia, {dan: "true"}, "DelegatesAndMe")
    invite(server, olga, pia, "Offsite", dan)
    as_dan, as_pia = make_account(server, dan.address), make_account(server, pia.address)

    def copies() -> list[tuple[bool, str | None]]:
        return sorted((bool(m.is_delegated), m.received_representing.email_address if m.is_delegated else None)
                      for m in requests_in(as_dan.inbox, "Offsite"))

    assert copies() == [(False, None), (True, pia.address)]
    [own] = requests_in(as_pia.inbox, "Offsite")
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as smtp:  # the same message delivered again
        smtp.sendmail(olga.address, [pia.address, dan.address], own.mime_content)
    server.settle()
    assert copies() == [(False, None), (True, pia.address)]
    assert len(requests_in(as_pia.inbox, "Offsite")) == 1
