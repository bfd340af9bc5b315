"""Meetings between two local mailboxes through exchangelib (invitations through the transport,
the attendee's tentative meeting, accept / tentative / decline, the organizer seeing responses,
cancellation, a recurring meeting), the iCalendar that is sent, and a request arriving over
SMTP from another server; on both back ends."""

from __future__ import annotations

import email
import email.policy
import smtplib
from datetime import UTC, timedelta

import icalendar
import pytest
from exchangelib import Account, Attendee, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorCalendarIsOrganizerForAccept
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE, MeetingCancellation, MeetingRequest
from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern

from .conftest import PASSWORD, make_account, new_mailbox
from .soap import codes, envelope, parse, post

BERLIN = EWSTimeZone("Europe/Berlin")


def _start(days: int = 7) -> EWSDateTime:
    return EWSDateTime(2031, 3, 3, 10, 0, tzinfo=BERLIN) + timedelta(days=days)


@pytest.fixture
def bob(server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    return new_mailbox(server_store, domain, "bob", "Bob Attendee")


def _invite(account, attendees: list[str], subject: str = "Planning", **extra) -> CalendarItem:
    start = _start()
    item = CalendarItem(account=account, folder=account.calendar, subject=subject, start=start,
                        end=start + timedelta(hours=1), location="Room 4", body="Agenda: the plan",
                        required_attendees=[Attendee(mailbox=a, response_type="Unknown") for a in attendees],
                        **extra)
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def _invited(account, server, bob, attendees: tuple[str, ...] = (), **extra) -> tuple[CalendarItem, Account]:
    """``_invite`` bob (and ``attendees``), the invitations delivered; the organizer's meeting and bob's account."""
    item = _invite(account, [bob.address, *attendees], **extra)
    server.settle()
    return item, make_account(server, bob.address)


# exchangelib's response method -> the response recorded and the item class of the reply sent
_RESPONSES = {"accept": ("Accept", "IPM.Schedule.Meeting.Resp.Pos"),
              "tentatively_accept": ("Tentative", "IPM.Schedule.Meeting.Resp.Tent"),
              "decline": ("Decline", "IPM.Schedule.Meeting.Resp.Neg")}


def responses(*methods: str) -> list[tuple[str, str, str]]:
    """Parameters (respond, response, item_class) for these response methods."""
    return [(method, *_RESPONSES[method]) for method in methods]


def _request(bob_account, subject: str = "Planning") -> MeetingRequest:
    [request] = [m for m in bob_account.inbox.filter(subject=subject) if isinstance(m, MeetingRequest)]
    return request


def test_an_invitation_reaches_the_attendee_with_a_tentative_meeting(account, server, bob):
    item = _invite(account, [bob.address])
    server.settle()

    mine = account.calendar.get(id=item.id)
    assert mine.is_meeting and mine.meeting_request_was_sent
    assert mine.organizer.email_address == account.primary_smtp_address
    assert mine.my_response_type == "Organizer"
    sent = list(account.sent.all())
    assert [s.subject for s in sent] == ["Planning"] and sent[0].item_class == "IPM.Schedule.Meeting.Request"

    bob_account = make_account(server, bob.address)
    request = _request(bob_account)
    assert request.item_class == "IPM.Schedule.Meeting.Request"
    assert request.meeting_request_type == "NewMeetingRequest"
    assert request.start == mine.start and request.end == mine.end
    assert request.location == "Room 4"
    assert request.organizer.email_address == account.primary_smtp_address
    assert [a.mailbox.email_address for a in request.required_attendees] == [bob.address]

    [tentative] = list(bob_account.calendar.all())
    assert tentative.uid == mine.uid and tentative.subject == "Planning"
    assert tentative.is_meeting and not tentative.meeting_request_was_sent
    assert tentative.my_response_type == "NoResponseReceived"
    assert tentative.legacy_free_busy_status == "Tentative"
    assert tentative.organizer.email_address == account.primary_smtp_address
    assert request.associated_calendar_item_id.id == tentative.id
    offered = request.response_objects
    assert offered.accept_item is not None and offered.decline_item is not None
    assert offered.cancel_calendar_item is None


@pytest.mark.parametrize(("respond", "response", "item_class"), responses("accept", "tentatively_accept"))
def test_a_response_updates_both_calendars(account, server, bob, respond, response, item_class):
    item, bob_account = _invited(account, server, bob)
    getattr(_request(bob_account), respond)()
    server.settle()

    [meeting] = list(bob_account.calendar.all())
    assert meeting.my_response_type == response
    assert meeting.legacy_free_busy_status == ("Busy" if response == "Accept" else "Tentative")
    assert bob_account.inbox.filter(subject="Planning").count() == 0  # the request is done with
    assert bob_account.sent.all().count() == 1

    [reply] = [m for m in account.inbox.all() if m.item_class.startswith("IPM.Schedule.Meeting.Resp")]
    assert reply.item_class == item_class
    organizer_view = account.calendar.get(id=item.id)
    [attendee] = organizer_view.required_attendees
    assert attendee.mailbox.email_address == bob.address
    assert attendee.response_type == response
    assert attendee.last_response_time is not None


def test_accepting_with_save_only_sends_no_reply(account, server, bob):
    item, bob_account = _invited(account, server, bob)
    body = (f'<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:AcceptItem>'
            f'<t:ReferenceItemId Id="{_request(bob_account).id}"/></t:AcceptItem></m:Items></m:CreateItem>')
    root = parse(post(server.ews_url, envelope(body), bob.address, PASSWORD))
    assert codes(root) == ["NoError"]
    server.settle()
    [meeting] = list(bob_account.calendar.all())
    assert meeting.my_response_type == "Accept"
    assert account.inbox.all().count() == 0
    [attendee] = account.calendar.get(id=item.id).required_attendees
    assert attendee.response_type == "Unknown"


def test_declining_removes_the_meeting_from_the_attendee_calendar(account, server, bob):
    item, bob_account = _invited(account, server, bob)
    _request(bob_account).decline()
    server.settle()

    assert bob_account.calendar.all().count() == 0
    assert bob_account.trash.filter(subject="Planning").count() == 2  # the meeting and its request
    [reply] = list(account.inbox.all())
    assert reply.item_class == "IPM.Schedule.Meeting.Resp.Neg" and reply.subject == "Declined: Planning"
    [attendee] = account.calendar.get(id=item.id).required_attendees
    assert attendee.response_type == "Decline"


def test_the_organizer_cannot_accept_its_own_meeting(account, server, bob):
    item = _invite(account, [bob.address])
    with pytest.raises(ErrorCalendarIsOrganizerForAccept):
        account.calendar.get(id=item.id).accept()
    assert account.calendar.get(id=item.id).my_response_type == "Organizer"


def test_cancelling_tells_the_attendees(account, server, bob):
    item, bob_account = _invited(account, server, bob)
    _request(bob_account).accept()
    server.settle()

    account.calendar.get(id=item.id).cancel()
    server.settle()
    assert account.calendar.all().count() == 0

    [cancellation] = [m for m in bob_account.inbox.all() if isinstance(m, MeetingCancellation)]
    assert cancellation.item_class == "IPM.Schedule.Meeting.Canceled"
    assert cancellation.subject == "Canceled: Planning"
    [meeting] = list(bob_account.calendar.all())
    assert meeting.is_cancelled and meeting.subject == "Canceled: Planning"

    removed = _remove(server, bob, cancellation.id)  # Outlook's "Remove from calendar"
    assert codes(removed) == ["NoError"]
    assert bob_account.calendar.all().count() == 0
    assert bob_account.inbox.all().count() == 0


def _remove(server, who, reference: str):
    body = (f'<m:CreateItem MessageDisposition="SaveOnly"><m:Items><t:RemoveItem>'
            f'<t:ReferenceItemId Id="{reference}"/></t:RemoveItem></m:Items></m:CreateItem>')
    return parse(post(server.ews_url, envelope(body), who.address, PASSWORD))


def test_remove_item_wants_a_cancellation(account, server, bob):
    _, bob_account = _invited(account, server, bob)
    request = _request(bob_account)
    assert codes(_remove(server, bob, request.id)) == ["ErrorInvalidReferenceItem"]
    assert bob_account.calendar.all().count() == 1 and bob_account.inbox.all().count() == 1


def test_deleting_with_cancellations_sends_them(account, server, bob):
    item = _invite(account, [bob.address])
    server.settle()
    account.calendar.get(id=item.id).delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()
    bob_account = make_account(server, bob.address)
    assert [m.item_class for m in bob_account.inbox.all()].count("IPM.Schedule.Meeting.Canceled") == 1
    [meeting] = list(bob_account.calendar.all())
    assert meeting.is_cancelled


def test_an_update_moves_the_attendee_meeting(account, server, bob):
    item, bob_account = _invited(account, server, bob)
    _request(bob_account).accept()
    server.settle()

    item = account.calendar.get(id=item.id)
    item.start, item.end = item.start + timedelta(hours=2), item.end + timedelta(hours=2)
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()

    [meeting] = list(bob_account.calendar.all())
    assert meeting.start == item.start
    assert meeting.my_response_type == "NoResponseReceived"  # a new time asks for a new answer
    [update] = [m for m in bob_account.inbox.all() if isinstance(m, MeetingRequest)]
    assert update.meeting_request_type == "FullUpdate"


def test_saving_without_invitations_sends_nothing(account, server, bob):
    start = _start()
    item = CalendarItem(account=account, folder=account.calendar, subject="Quiet", start=start,
                        end=start + timedelta(hours=1), required_attendees=[Attendee(mailbox=bob.address)])
    item.save(send_meeting_invitations=SEND_TO_NONE)
    server.settle()
    saved = account.calendar.get(id=item.id)
    assert saved.is_meeting and not saved.meeting_request_was_sent
    assert make_account(server, bob.address).inbox.all().count() == 0


def test_a_recurring_meeting(account, server, bob):
    first = _start()
    recurrence = Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[first.isoweekday()]),
                            boundary=NumberedPattern(start=first.date(), number=4))
    _, bob_account = _invited(account, server, bob, subject="Weekly", recurrence=recurrence)
    request = _request(bob_account, "Weekly")
    assert request.recurrence.pattern == recurrence.pattern and request.recurrence.boundary.number == 4
    [master] = list(bob_account.calendar.all())
    assert master.type == "RecurringMaster" and master.recurrence == recurrence
    occurrences = list(bob_account.calendar.view(start=first - timedelta(days=1), end=first + timedelta(days=40)))
    assert [o.start for o in occurrences] == [first + timedelta(weeks=n) for n in range(4)]


def test_the_request_sent_is_standard_icalendar(account, server, bob):
    item = _invite(account, [bob.address, "carol@elsewhere.example"])
    server.settle()
    [sent] = list(account.sent.all())
    message = email.message_from_bytes(sent.mime_content, policy=email.policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST"
    cal = icalendar.Calendar.from_ical(part.get_content())
    assert cal["method"] == "REQUEST"
    [zone] = cal.walk("VTIMEZONE")
    assert zone["tzid"] == "Europe/Berlin"
    [event] = cal.walk("VEVENT")
    assert event["uid"] == account.calendar.get(id=item.id).uid
    assert event.decoded("dtstart") == item.start
    assert int(event["sequence"]) == 0
    assert str(event["organizer"]) == f"mailto:{account.primary_smtp_address}"
    attendees = {str(a): a.params for a in event["attendee"]}
    assert set(attendees) == {f"mailto:{bob.address}", "mailto:carol@elsewhere.example"}
    assert attendees[f"mailto:{bob.address}"]["ROLE"] == "REQ-PARTICIPANT"
    assert attendees[f"mailto:{bob.address}"]["PARTSTAT"] == "NEEDS-ACTION"
    assert attendees[f"mailto:{bob.address}"]["RSVP"] == "TRUE"


def _external_request(to: str, uid: str) -> bytes:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Other server//EN")
    cal.add("version", "2.0")
    cal.add("method", "REQUEST")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("sequence", 0)
    event.add("dtstamp", _start(0))
    event.add("dtstart", _start(3))
    event.add("dtend", _start(3) + timedelta(minutes=45))
    event.add("summary", "Partner call")
    organizer = icalendar.vCalAddress("mailto:dana@partner.example")
    organizer.params["CN"] = "Dana"
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{to}")
    attendee.params.update(ROLE="REQ-PARTICIPANT", PARTSTAT="NEEDS-ACTION", RSVP="TRUE")
    event.add("attendee", attendee)
    cal.add_component(event)
    cal.add_missing_timezones()
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "Dana <dana@partner.example>"
    msg["To"] = to
    msg["Subject"] = "Partner call"
    msg["Message-ID"] = email.utils.make_msgid(domain="partner.example")
    msg.set_content("Let us talk.")
    msg.add_alternative(cal.to_ical().decode(), subtype="calendar", params={"method": "REQUEST"})
    return msg.as_bytes()


def test_a_request_from_another_server_over_smtp(server, bob):
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        client.sendmail("dana@partner.example", [bob.address], _external_request(bob.address, "ext-uid-1"))
    server.settle()

    bob_account = make_account(server, bob.address)
    request = _request(bob_account, "Partner call")
    assert request.organizer.email_address == "dana@partner.example"
    assert request.start == _start(3)
    [meeting] = list(bob_account.calendar.all())
    assert meeting.uid == "ext-uid-1" and meeting.my_response_type == "NoResponseReceived"
    assert meeting.start == _start(3) and meeting.end == _start(3) + timedelta(minutes=45)


def test_an_unreadable_calendar_part_stays_plain_mail(server, bob):
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "dana@partner.example"
    msg["To"] = bob.address
    msg["Subject"] = "Broken invite"
    msg.set_content("See the calendar.")
    msg.add_alternative("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:not-a-date\r\n",
                        subtype="calendar", params={"method": "REQUEST"})
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        client.sendmail("dana@partner.example", [bob.address], msg.as_bytes())
    server.settle()
    bob_account = make_account(server, bob.address)
    [item] = list(bob_account.inbox.all())
    assert item.item_class == "IPM.Note" and item.subject == "Broken invite"
    assert bob_account.calendar.all().count() == 0


_T = 'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"'


@pytest.mark.parametrize(("pattern", "rule"), [
    ("<t:DailyRecurrence><t:Interval>2</t:Interval></t:DailyRecurrence>", "FREQ=DAILY;INTERVAL=2"),
    ("<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday Thursday</t:DaysOfWeek>"
     "<t:FirstDayOfWeek>Monday</t:FirstDayOfWeek></t:WeeklyRecurrence>", "FREQ=WEEKLY;BYDAY=MO,TH;WKST=MO"),
    ("<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval><t:DayOfMonth>15</t:DayOfMonth>"
     "</t:AbsoluteMonthlyRecurrence>", "FREQ=MONTHLY;BYMONTHDAY=15"),
    ("<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Weekday</t:DaysOfWeek>"
     "<t:DayOfWeekIndex>Last</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>",
     "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"),
    ("<t:RelativeYearlyRecurrence><t:DaysOfWeek>Tuesday</t:DaysOfWeek><t:DayOfWeekIndex>Second"
     "</t:DayOfWeekIndex><t:Month>June</t:Month></t:RelativeYearlyRecurrence>",
     "FREQ=YEARLY;BYMONTH=6;BYDAY=TU;BYSETPOS=2"),
])
def test_recurrences_round_trip_through_rrule(pattern, rule):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from lxml import etree

    from mailroom.content import icalrecur

    zone = ZoneInfo("Europe/Berlin")
    recurrence = (f"<t:Recurrence {_T}>{pattern}<t:EndDateRecurrence><t:StartDate>2031-03-03+01:00</t:StartDate>"
                  "<t:EndDate>2031-12-31+01:00</t:EndDate></t:EndDateRecurrence></t:Recurrence>")
    made = icalrecur.to_rrule(recurrence, zone, datetime(2031, 3, 3, 10).time())
    value = icalendar.vRecur(made)
    assert value.to_ical().decode().startswith(rule.split(";")[0])
    assert set(rule.split(";")) <= set(value.to_ical().decode().replace(";UNTIL=20311231T090000Z", "").split(";"))
    back = icalrecur.from_rrule(icalendar.vRecur.from_ical(value.to_ical().decode()),
                                datetime(2031, 3, 3, 10, tzinfo=zone))
    canonical = etree.tostring(etree.fromstring(recurrence), method="c14n")
    assert etree.tostring(etree.fromstring(back), method="c14n") == canonical


def test_an_rrule_ews_cannot_say_is_no_recurrence():
    from datetime import datetime

    from mailroom.content import icalrecur

    assert icalrecur.from_rrule(icalendar.vRecur.from_ical("FREQ=HOURLY;COUNT=3"), datetime(2031, 3, 3, 10,
                                                                                          tzinfo=UTC)) is None
    assert icalrecur.from_rrule(icalendar.vRecur.from_ical("FREQ=MONTHLY;BYDAY=5MO"), datetime(2031, 3, 3, 10,
                                                                                            tzinfo=UTC)) is None
