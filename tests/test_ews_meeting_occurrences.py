"""One occurrence of a recurring meeting: the organizer moving or cancelling it, an attendee
answering for it alone, each sent as iCalendar with a RECURRENCE-ID and applied by the calendar
attendant to that occurrence of the other side's series (not to the series, not as a new meeting);
the same from another server over SMTP."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import icalendar
import pytest
from aiosmtpd.controller import Controller
from exchangelib import Attendee
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, MeetingCancellation, MeetingRequest
from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern

from . import test_ews_meetings
from .conftest import PASSWORD, RunningServer, make_account, new_mailbox
from .soap import codes, envelope, parse, post
from .test_ews_meetings import _external_request, _invited, _remove, _request, _start
from .test_transport_outbound import Sink

bob = test_ews_meetings.bob  # the attendee's mailbox (a fixture)
WEEKS = 4
CAROL = "carol@elsewhere.example"  # an attendee on another server: her mail goes to the sink


@pytest.fixture
def sink_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sink(sink_port: int) -> Iterator[Sink]:
    """A loopback SMTP server standing in for every other server (the smart host)."""
    handler = Sink()
    controller = Controller(handler, hostname="127.0.0.1", port=sink_port)
    controller.start()
    yield handler
    controller.stop()


@pytest.fixture
def server(store_url: str, tmp_path: Path, sink: Sink, sink_port: int) -> Iterator[RunningServer]:
    """The real server, relaying mail for other domains to ``sink``."""
    running = RunningServer(store_url, tmp_path / "data", **{"transport.smart_host": f"127.0.0.1:{sink_port}"})
    yield running
    running.stop()
    assert not running.bad_responses, "responses that fail the EWS schema:\n" + "\n".join(running.bad_responses)


def _series(account, server, bob) -> tuple:
    """A weekly meeting of four with Bob and Carol (elsewhere), accepted by Bob; Bob's account."""
    first = _start()
    recurrence = Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[first.isoweekday()]),
                            boundary=NumberedPattern(start=first.date(), number=WEEKS))
    _, bob_account = _invited(account, server, bob, (CAROL,), subject="Weekly", recurrence=recurrence)
    _request(bob_account, "Weekly").accept()
    server.settle()
    for message in account.inbox.all():
        message.delete()
    return bob_account


def _view(account) -> list:
    first = _start()
    return list(account.calendar.view(start=first - timedelta(days=1), end=first + timedelta(weeks=WEEKS + 1)))


def _sent_to_carol(sink: Sink) -> list[icalendar.Event]:
    """The VEVENTs of the meeting messages the other server received for Carol, in order."""
    return [_ical(received.content) for received in sink.received if CAROL in received.rcpt_tos]


def _ical(mime: bytes) -> icalendar.Event:
    message = email.message_from_bytes(mime, policy=email.policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    [event] = icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")
    return event


def test_moving_one_occurrence_moves_it_for_the_attendee(account, server, bob, sink):
    bob_account = _series(account, server, bob)
    third = _view(account)[2]
    original = third.start
    third.start, third.end = third.start + timedelta(hours=3), third.end + timedelta(hours=3)
    third.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()

    [event] = [e for s in account.sent.all() if "recurrence-id" in (e := _ical(s.mime_content))]
    assert event.decoded("recurrence-id") == original and "rrule" not in event
    assert event.decoded("dtstart") == original + timedelta(hours=3)
    assert int(event["sequence"]) == 1

    [update] = [m for m in bob_account.inbox.all() if isinstance(m, MeetingRequest)]
    assert update.meeting_request_type == "FullUpdate" and update.start == original + timedelta(hours=3)
    assert _ical(update.mime_content).decoded("recurrence-id") == original
    [master] = list(bob_account.calendar.all())
    assert master.type == "RecurringMaster" and master.my_response_type == "Accept"  # the series stays
    shown = _view(bob_account)
    assert [o.start for o in shown] == [_start() + timedelta(weeks=n, hours=3 if n == 2 else 0) for n in range(WEEKS)]
    assert [o.type for o in shown] == ["Occurrence", "Occurrence", "Exception", "Occurrence"]
    assert shown[2].my_response_type == "NoResponseReceived" and shown[1].my_response_type == "Accept"
    assert [m.start for m in bob_account.calendar.get(id=master.id).modified_occurrences] == [third.start]
    series, update = _sent_to_carol(sink)  # the attendee elsewhere: the same, over SMTP
    assert "rrule" in series and "recurrence-id" not in series
    assert update.decoded("recurrence-id") == original and "rrule" not in update
    assert update.decoded("dtstart") == original + timedelta(hours=3)


def test_answering_for_one_occurrence_is_recorded_on_it(account, server, bob):
    bob_account = _series(account, server, bob)
    third = _view(account)[2]
    third.subject = "Weekly (in the big room)"
    third.save(update_fields=["subject"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()
    [update] = [m for m in bob_account.inbox.all() if isinstance(m, MeetingRequest)]
    assert update.meeting_request_type == "InformationalUpdate"
    assert _view(bob_account)[2].subject == "Weekly (in the big room)"
    update.tentatively_accept()
    server.settle()

    [reply] = list(account.inbox.all())
    assert reply.item_class == "IPM.Schedule.Meeting.Resp.Tent"
    organizer = _view(account)
    assert [o.required_attendees[0].response_type for o in organizer] == ["Accept", "Accept", "Tentative", "Accept"]
    [master] = [i for i in account.calendar.all()]
    assert master.required_attendees[0].response_type == "Accept"
    assert [o.my_response_type for o in _view(bob_account)] == ["Accept", "Accept", "Tentative", "Accept"]


def test_declining_one_occurrence_deletes_only_it(account, server, bob):
    bob_account = _series(account, server, bob)
    second = _view(bob_account)[1]
    second.decline()
    server.settle()

    assert [o.start for o in _view(bob_account)] == [_start() + timedelta(weeks=n) for n in (0, 2, 3)]
    [master] = list(bob_account.calendar.all())
    assert master.type == "RecurringMaster"
    [reply] = list(account.inbox.all())
    assert reply.item_class == "IPM.Schedule.Meeting.Resp.Neg"
    assert _ical(reply.mime_content).decoded("recurrence-id") == second.start
    assert [o.required_attendees[0].response_type for o in _view(account)] == ["Accept", "Decline", "Accept",
                                                                               "Accept"]


def test_deleting_one_occurrence_cancels_only_it(account, server, bob, sink):
    bob_account = _series(account, server, bob)
    second = _view(account)[1]
    second.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()

    [cancellation] = [m for m in bob_account.inbox.all() if isinstance(m, MeetingCancellation)]
    assert cancellation.subject == "Canceled: Weekly"
    shown = _view(bob_account)
    assert len(shown) == WEEKS and shown[1].is_cancelled and shown[1].subject == "Canceled: Weekly"
    assert not shown[0].is_cancelled and shown[0].subject == "Weekly"
    [master] = list(bob_account.calendar.all())
    assert not master.is_cancelled
    cancellation_elsewhere = _sent_to_carol(sink)[-1]
    assert cancellation_elsewhere["status"] == "CANCELLED"
    assert cancellation_elsewhere.decoded("recurrence-id") == second.start

    assert codes(_remove(server, bob, cancellation.id)) == ["NoError"]
    assert [o.start for o in _view(bob_account)] == [_start() + timedelta(weeks=n) for n in (0, 2, 3)]
    assert bob_account.calendar.all().count() == 1


def test_cancel_calendar_item_on_one_occurrence(account, server, bob):
    bob_account = _series(account, server, bob)
    last = _view(account)[3]
    body = (f'<m:CreateItem MessageDisposition="SendAndSaveCopy"><m:Items><t:CancelCalendarItem>'
            f'<t:ReferenceItemId Id="{last.id}"/></t:CancelCalendarItem></m:Items></m:CreateItem>')
    root = parse(post(server.ews_url, envelope(body), account.primary_smtp_address, PASSWORD))
    assert codes(root) == ["NoError"]
    server.settle()
    assert len(_view(account)) == WEEKS - 1 and account.calendar.all().count() == 1
    assert [o.is_cancelled for o in _view(bob_account)] == [False, False, False, True]


def _smtp(server, sender: str, to: str, raw: bytes) -> None:
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        client.sendmail(sender, [to], raw)


def _external_occurrence(to: str, uid: str, method: str, **change) -> bytes:
    """A message about the second occurrence of the external weekly series, as another server sends it."""
    raw = _external_series(to, uid)
    message = email.message_from_bytes(raw, policy=email.policy.SMTP)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    cal = icalendar.Calendar.from_ical(part.get_content())
    cal["method"] = icalendar.vText(method)
    [event] = cal.walk("VEVENT")
    original = event.decoded("dtstart") + timedelta(weeks=1)
    for name in ("dtstart", "dtend"):
        moved = event.decoded(name) + timedelta(weeks=1) + change.get("shift", timedelta(0))
        del event[name]
        event.add(name, moved)
    event.add("recurrence-id", original)
    event["sequence"] = 1
    if method == "CANCEL":
        event.add("status", "CANCELLED")
    del event["rrule"]
    part.set_content(cal.to_ical().decode(), subtype="calendar", params={"method": method}, cte="quoted-printable")
    return message.as_bytes()


def _external_series(to: str, uid: str) -> bytes:
    raw = _external_request(to, uid)
    return raw.replace(b"SUMMARY:Partner call", b"RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Partner call")


@pytest.mark.parametrize("method", ["REQUEST", "CANCEL"])
def test_an_occurrence_from_another_server(server, bob, method):
    _smtp(server, "dana@partner.example", bob.address, _external_series(bob.address, "ext-series"))
    server.settle()
    bob_account = make_account(server, bob.address)
    first = _start(3)
    assert len(list(bob_account.calendar.view(start=first, end=first + timedelta(weeks=5)))) == 4

    _smtp(server, "dana@partner.example", bob.address,
          _external_occurrence(bob.address, "ext-series", method, shift=timedelta(hours=1)))
    server.settle()
    [master] = list(bob_account.calendar.all())
    assert master.type == "RecurringMaster" and not master.is_cancelled
    shown = list(bob_account.calendar.view(start=first, end=first + timedelta(weeks=5)))
    assert len(shown) == 4
    if method == "REQUEST":
        assert shown[1].start == first + timedelta(weeks=1, hours=1) and shown[1].type == "Exception"
    else:
        assert shown[1].is_cancelled and not shown[0].is_cancelled


@pytest.mark.parametrize(("rule", "pattern"), [
    ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", "<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday Tuesday "
     "Wednesday Thursday Friday</t:DaysOfWeek><t:FirstDayOfWeek>Sunday</t:FirstDayOfWeek></t:WeeklyRecurrence>"),
    ("FREQ=MONTHLY;BYDAY=2MO", "<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday"
     "</t:DaysOfWeek><t:DayOfWeekIndex>Second</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>"),
    ("FREQ=MONTHLY;BYDAY=-1FR", "<t:RelativeMonthlyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Friday"
     "</t:DaysOfWeek><t:DayOfWeekIndex>Last</t:DayOfWeekIndex></t:RelativeMonthlyRecurrence>"),
    ("FREQ=MONTHLY;BYMONTHDAY=-1", "<t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval><t:DayOfMonth>31"
     "</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>"),
    ("FREQ=YEARLY;INTERVAL=2", "<t:AbsoluteMonthlyRecurrence><t:Interval>24</t:Interval><t:DayOfMonth>3"
     "</t:DayOfMonth></t:AbsoluteMonthlyRecurrence>"),
    ("FREQ=YEARLY;BYMONTH=3;BYDAY=1MO", "<t:RelativeYearlyRecurrence><t:DaysOfWeek>Monday</t:DaysOfWeek>"
     "<t:DayOfWeekIndex>First</t:DayOfWeekIndex><t:Month>March</t:Month></t:RelativeYearlyRecurrence>"),
    ("FREQ=WEEKLY;BYHOUR=10;BYMINUTE=0", "<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Monday"
     "</t:DaysOfWeek><t:FirstDayOfWeek>Sunday</t:FirstDayOfWeek></t:WeeklyRecurrence>"),
])
def test_every_rrule_template_maps_to_an_ews_pattern(rule, pattern):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from lxml import etree

    from mailroom.content import icalrecur

    start = datetime(2031, 3, 3, 10, tzinfo=ZoneInfo("Europe/Berlin"))  # a Monday
    made = icalrecur.from_rrule(icalendar.vRecur.from_ical(rule), start)
    expected = (f'<t:Recurrence xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">{pattern}'
                "<t:NoEndRecurrence><t:StartDate>2031-03-03+01:00</t:StartDate></t:NoEndRecurrence></t:Recurrence>")
    assert etree.tostring(etree.fromstring(made), method="c14n") == etree.tostring(etree.fromstring(expected),
                                                                                   method="c14n")


@pytest.mark.parametrize("rule", ["FREQ=HOURLY;COUNT=3", "FREQ=MONTHLY;BYDAY=5MO", "FREQ=YEARLY;BYMONTH=3,9",
                                  "FREQ=WEEKLY;BYHOUR=10,16", "FREQ=YEARLY;BYYEARDAY=100", "FREQ=WEEKLY;COUNT=5000"])
def test_an_rrule_no_ews_pattern_says_is_kept_as_its_first_instance_and_said_so(server, bob, rule, caplog):
    raw = _external_request(bob.address, "ext-odd").replace(b"SUMMARY:Partner call",
                                                            f"RRULE:{rule}\r\nSUMMARY:Partner call".encode())
    _smtp(server, "dana@partner.example", bob.address, raw)
    server.settle()
    bob_account = make_account(server, bob.address)
    [meeting] = list(bob_account.calendar.all())
    assert meeting.type == "Single" and meeting.start == _start(3) and meeting.recurrence is None
    assert f"repeats ({rule})" in meeting.text_body and "only its first occurrence" in meeting.text_body
    assert "Let us talk." in meeting.text_body
    assert any(rule in r.getMessage() for r in caplog.records)


def test_exdate_deletes_those_occurrences(server, bob):
    first = _start(3)
    excluded = [first + timedelta(weeks=1), first + timedelta(weeks=3)]
    raw = _external_series(bob.address, "ext-exdate").replace(
        b"SUMMARY:Partner call", b"EXDATE;TZID=Europe/Berlin:" + b",".join(
            e.strftime("%Y%m%dT%H%M%S").encode() for e in excluded) + b"\r\nSUMMARY:Partner call")
    _smtp(server, "dana@partner.example", bob.address, raw)
    server.settle()
    bob_account = make_account(server, bob.address)
    shown = list(bob_account.calendar.view(start=first, end=first + timedelta(weeks=5)))
    assert [o.start for o in shown] == [first, first + timedelta(weeks=2)]
    [master] = list(bob_account.calendar.all())
    assert master.deleted_occurrences is not None and len(master.deleted_occurrences) == 2


def test_a_series_with_a_deleted_occurrence_is_sent_with_exdate(account, server, bob):
    _series(account, server, bob)
    second = _view(account)[1]
    second.delete(send_meeting_cancellations="SendToNone")
    master = next(iter(account.calendar.all()))
    master.location = "Room 7"
    master.save(update_fields=["location"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()
    [event] = [e for s in account.sent.all() if "exdate" in (e := _ical(s.mime_content))]
    assert [d.dt for d in event["exdate"].dts] == [second.start]
    bob_account = make_account(server, bob.address)
    assert [o.start for o in _view(bob_account)] == [_start() + timedelta(weeks=n) for n in (0, 2, 3)]


def test_a_series_carries_its_exceptions(account, server, server_store, bob, sink):
    _series(account, server, bob)
    third = _view(account)[2]
    third.start, third.end = third.start + timedelta(hours=1), third.end + timedelta(hours=1)
    third.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    dave = new_mailbox(server_store, bob.address.split("@", 1)[1], "dave", "Dave Latecomer")
    master = next(iter(account.calendar.all()))
    master.required_attendees = [*master.required_attendees, Attendee(mailbox=dave.address)]
    master.save(update_fields=["required_attendees"], send_meeting_invitations="SendToChangedAndSaveCopy")
    server.settle()

    dave_account = make_account(server, dave.address)
    shown = _view(dave_account)
    assert [o.start for o in shown] == [_start() + timedelta(weeks=n, hours=1 if n == 2 else 0) for n in range(WEEKS)]
    assert [o.type for o in shown] == ["Occurrence", "Occurrence", "Exception", "Occurrence"]
    message = email.message_from_bytes(next(m for m in dave_account.inbox.all()).mime_content,
                                       policy=email.policy.default)
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    series, exception = icalendar.Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert "rrule" in series and exception.decoded("recurrence-id") == _start() + timedelta(weeks=2)
