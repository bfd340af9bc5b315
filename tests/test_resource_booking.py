"""The Resource Booking Attendant through exchangelib: a room that is free accepts (the organizer's
meeting records the room's Accept, the room's calendar holds it Busy, free/busy shows it), an
overlapping request is declined with the reason, updates are judged again, a cancellation frees
the room; the calendar processing policy (AllowConflicts, MaximumDurationInMinutes,
BookingWindowInDays, recurring meetings and MaximumConflictInstances, AutomateProcessing None /
AutoUpdate); and `mailroom calendar-processing get|set`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.items import SEND_TO_ALL_AND_SAVE_COPY, MeetingRequest
from exchangelib.recurrence import NumberedPattern, Recurrence, WeeklyPattern

from .conftest import make_account, new_mailbox, password_hash
from .test_cli import fails, mailroom, ok, table_rows
from .test_ews_meeting_occurrences import _ical

ZONE = EWSTimeZone("UTC")


def _at(days: int, hour: int, minute: int = 0) -> EWSDateTime:
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return EWSDateTime(day.year, day.month, day.day, hour, minute, tzinfo=ZONE)


@pytest.fixture
def room(server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    return server_store.directory.add_mailbox(f"board@{domain}", password_hash(), "Boardroom", kind="room")


@pytest.fixture
def bob(server_store, mailbox):
    return new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob", "Bob Organizer")


def _book(account, room, start: EWSDateTime, minutes: int = 60, subject: str = "Planning", **extra) -> CalendarItem:
    item = CalendarItem(account=account, folder=account.calendar, subject=subject, start=start,
                        end=start + timedelta(minutes=minutes), body="Agenda: the plan",
                        resources=[Attendee(mailbox=room.address, response_type="Unknown")], **extra)
    item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return item


def _room_response(account, item) -> str:
    [resource] = account.calendar.get(id=item.id).resources
    return resource.response_type


def _answers(account, subject: str) -> list:
    return [m for m in account.inbox.all() if m.item_class.startswith("IPM.Schedule.Meeting.Resp")
            and m.subject.endswith(subject)]


def _bookings(server, room) -> list[CalendarItem]:
    return list(make_account(server, room.address).calendar.all())


def test_a_free_room_accepts_and_an_overlapping_request_is_declined(account, server, room, bob):
    start = _at(7, 10)
    item = _book(account, room, start)
    server.settle()

    assert _room_response(account, item) == "Accept"
    [answer] = _answers(account, "Planning")
    assert answer.item_class == "IPM.Schedule.Meeting.Resp.Pos" and answer.subject == "Accepted: Planning"
    assert "Your request was accepted." in answer.text_body
    [booking] = _bookings(server, room)
    assert booking.legacy_free_busy_status == "Busy" and booking.my_response_type == "Accept"
    assert booking.subject == "Alice Example"  # AddOrganizerToSubject and DeleteSubject, Exchange's defaults
    assert not booking.text_body  # DeleteComments
    assert booking.start == start and booking.organizer.email_address == account.primary_smtp_address
    [view] = account.protocol.get_free_busy_info(accounts=[(room.address, "Room", False)], start=_at(7, 8),
                                                 end=_at(7, 13), merged_free_busy_interval=60,
                                                 requested_view="FreeBusyMerged")
    assert view.merged == "00200"
    assert [(e.start, e.busy_type) for e in view.calendar_events] == [(start, "Busy")]

    bob_account = make_account(server, bob.address)
    clash = _book(bob_account, room, _at(7, 10, 30), subject="Clash")
    server.settle()
    assert _room_response(bob_account, clash) == "Decline"
    [answer] = _answers(bob_account, "Clash")
    assert answer.item_class == "IPM.Schedule.Meeting.Resp.Neg" and answer.subject == "Declined: Clash"
    assert "Your request was declined." in answer.text_body
    assert "already booked" in answer.text_body and f"{_at(7, 10, 30):%Y-%m-%d %H:%M} - 11:30" in answer.text_body
    assert [b.subject for b in _bookings(server, room)] == ["Alice Example"]
    room_account = make_account(server, room.address)
    requests = [m for m in room_account.inbox.all() if isinstance(m, MeetingRequest)]
    assert sorted(r.subject for r in requests) == ["Clash", "Planning"]


def test_updates_are_judged_again_and_cancellations_free_the_room(account, server, server_store, room):
    server_store.calendar_processing.set(room.address, {"DeleteSubject": False, "AddOrganizerToSubject": False})
    first = _book(account, room, _at(8, 10), subject="First")
    second = _book(account, room, _at(8, 12), subject="Second")
    server.settle()
    assert sorted(b.subject for b in _bookings(server, room)) == ["First", "Second"]

    second = account.calendar.get(id=second.id)  # the room's answer changed it
    second.start, second.end = _at(8, 10, 30), _at(8, 11, 30)  # moved onto the first
    second.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()
    assert _room_response(account, second) == "Decline"
    assert [b.subject for b in _bookings(server, room)] == ["First"]

    second = account.calendar.get(id=second.id)
    second.start, second.end = _at(8, 14), _at(8, 15)  # and away again
    second.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()
    assert _room_response(account, second) == "Accept"
    assert sorted(b.subject for b in _bookings(server, room)) == ["First", "Second"]

    account.calendar.get(id=first.id).cancel()
    server.settle()
    assert [b.subject for b in _bookings(server, room)] == ["Second"]
    again = _book(account, room, _at(8, 10), subject="Third")  # the cancelled meeting's time is free
    server.settle()
    assert _room_response(account, again) == "Accept"


def test_the_policy_limits(account, server, server_store, room):
    server_store.calendar_processing.set(room.address, {"AllowConflicts": True, "MaximumDurationInMinutes": 90,
                                                        "DeleteSubject": False, "AddOrganizerToSubject": False,
                                                        "AddAdditionalResponse": True,
                                                        "AdditionalResponse": "Keys at the front desk."})
    one = _book(account, room, _at(9, 10), subject="One")
    two = _book(account, room, _at(9, 10), subject="Two")
    long = _book(account, room, _at(9, 14), minutes=120, subject="Long")
    far = _book(account, room, _at(200, 10), subject="Far")
    server.settle()
    assert [_room_response(account, i) for i in (one, two, long, far)] == ["Accept", "Accept", "Decline", "Decline"]
    assert sorted(b.subject for b in _bookings(server, room)) == ["One", "Two"]
    assert "Keys at the front desk." in _answers(account, "One")[0].text_body
    assert "maximum duration of 90 minutes" in _answers(account, "Long")[0].text_body
    assert "booking window" in _answers(account, "Far")[0].text_body

    server_store.calendar_processing.set(room.address, {"AllowRecurringMeetings": False})
    weekly = _book(account, room, _at(10, 8), subject="Weekly", recurrence=Recurrence(
        pattern=WeeklyPattern(interval=1, weekdays=[_at(10, 8).isoweekday()]),
        boundary=NumberedPattern(start=_at(10, 8).date(), number=3)))
    server.settle()
    assert _room_response(account, weekly) == "Decline"
    assert "Recurring meetings are not allowed" in _answers(account, "Weekly")[0].text_body


def test_schedule_only_during_work_hours(account, server, server_store, room):
    from mailroom.store.working_hours import WorkingHours

    server_store.working_hours.set(room.address, WorkingHours(start=8 * 60, end=17 * 60, zone="UTC"))
    server_store.calendar_processing.set(room.address, {"ScheduleOnlyDuringWorkHours": True})
    weekday = next(d for d in range(7, 14) if _at(d, 10).weekday() < 5)
    late = _book(account, room, _at(weekday, 17), subject="Late")
    early = _book(account, room, _at(weekday, 8), subject="Early")
    server.settle()
    assert (_room_response(account, late), _room_response(account, early)) == ("Decline", "Accept")
    assert "outside the resource's working hours" in _answers(account, "Late")[0].text_body


def _weekly(account, room, subject: str, count: int = 3) -> CalendarItem:
    first = _at(7, 16)
    return _book(account, room, first, subject=subject, recurrence=Recurrence(
        pattern=WeeklyPattern(interval=1, weekdays=[first.isoweekday()]),
        boundary=NumberedPattern(start=first.date(), number=count)))


def test_a_recurring_meeting_with_one_conflicting_occurrence(account, server, server_store, room, bob):
    bob_account = make_account(server, bob.address)
    _book(bob_account, room, _at(14, 16, 30), subject="In the way")
    series = _weekly(account, room, "Weekly")
    server.settle()
    assert _room_response(account, series) == "Decline"
    text = _answers(account, "Weekly")[0].text_body
    assert "already booked" in text and f"{_at(14, 16):%Y-%m-%d %H:%M} - 17:00" in text
    assert f"{_at(7, 16):%Y-%m-%d}" not in text  # only the conflicting occurrence is listed
    assert [b.subject for b in _bookings(server, room)] == ["Bob Organizer"]

    server_store.calendar_processing.set(room.address, {"MaximumConflictInstances": 1,
                                                        "ConflictPercentageAllowed": 50})
    accepted = _weekly(account, room, "Weekly again")
    server.settle()
    assert _room_response(account, accepted) == "Accept"
    text = _answers(account, "Weekly again")[0].text_body
    assert "Your request was accepted." in text and f"{_at(14, 16):%Y-%m-%d %H:%M}" in text
    room_account = make_account(server, room.address)
    booked = [o.start for o in room_account.calendar.view(start=_at(6, 0), end=_at(30, 0))
              if o.subject == "Alice Example"]
    assert booked == [_at(7, 16), _at(21, 16)]  # the conflicting occurrence is not booked


def _occurrences(account) -> list[CalendarItem]:
    return list(account.calendar.view(start=_at(6, 0), end=_at(30, 0)))


def _move(account, index: int, start: EWSDateTime) -> EWSDateTime:
    """The organizer moves one occurrence of the series (an update with its RECURRENCE-ID); its
    original start."""
    occurrence = [o for o in _occurrences(account) if o.subject == "Weekly"][index]
    original = occurrence.original_start or occurrence.start
    occurrence.start, occurrence.end = start, start + timedelta(hours=1)
    occurrence.save(update_fields=["start", "end"], send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY)
    return original


def _occurrence_answers(account) -> list[tuple[str, EWSDateTime, str]]:
    """The room's answers for one occurrence: class, RECURRENCE-ID and text; the inbox emptied."""
    answers = []
    for message in account.inbox.all():
        event = _ical(message.mime_content)
        if "recurrence-id" in event:
            answers.append((message.item_class, event.decoded("recurrence-id"), message.text_body))
        message.delete()
    return answers


def _room_responses(account) -> list[str]:
    return [o.resources[0].response_type for o in _occurrences(account) if o.subject == "Weekly"]


def _room_occurrences(server, room) -> list[tuple[str, EWSDateTime, str, str]]:
    return [(o.subject, o.start, o.legacy_free_busy_status, o.my_response_type)
            for o in _occurrences(make_account(server, room.address))]


@pytest.fixture
def booked_series(account, server, server_store, room) -> None:
    """A weekly meeting of three at 16:00 that the room (keeping subjects) has accepted; the
    organizer's inbox emptied."""
    server_store.calendar_processing.set(room.address, {"DeleteSubject": False, "AddOrganizerToSubject": False})
    series = _weekly(account, room, "Weekly")
    server.settle()
    assert _room_response(account, series) == "Accept"
    for message in account.inbox.all():
        message.delete()


def test_an_occurrence_moved_to_a_free_time_is_accepted(account, server, room, booked_series):
    original = _move(account, 1, _at(14, 18))
    server.settle()

    [(item_class, recurrence_id, text)] = _occurrence_answers(account)
    assert item_class == "IPM.Schedule.Meeting.Resp.Pos" and recurrence_id == original == _at(14, 16)
    assert "Your request was accepted." in text
    assert _room_responses(account) == ["Accept", "Accept", "Accept"]
    assert _room_occurrences(server, room) == [("Weekly", _at(7, 16), "Busy", "Accept"),
                                               ("Weekly", _at(14, 18), "Busy", "Accept"),
                                               ("Weekly", _at(21, 16), "Busy", "Accept")]


def test_an_occurrence_moved_onto_another_booking_is_declined(account, server, room, bob, booked_series):
    bob_account = make_account(server, bob.address)
    _book(bob_account, room, _at(14, 18), subject="Bob's")
    _book(bob_account, room, _at(21, 18), subject="Bob's again")
    server.settle()
    original = _move(account, 1, _at(14, 18, 30))
    server.settle()

    [(item_class, recurrence_id, text)] = _occurrence_answers(account)
    assert item_class == "IPM.Schedule.Meeting.Resp.Neg" and recurrence_id == original == _at(14, 16)
    assert "Your request was declined." in text and "already booked" in text
    assert f"{_at(14, 18, 30):%Y-%m-%d %H:%M} - 19:30" in text
    assert _room_responses(account) == ["Accept", "Decline", "Accept"]
    room_series = [("Weekly", _at(7, 16), "Busy", "Accept"), ("Weekly", _at(21, 16), "Busy", "Accept")]
    assert [o for o in _room_occurrences(server, room) if o[0] == "Weekly"] == room_series  # the others untouched

    _move(account, 2, _at(21, 18))  # the last one declined too
    server.settle()
    assert [a[0] for a in _occurrence_answers(account)] == ["IPM.Schedule.Meeting.Resp.Neg"]
    _move(account, 1, _at(14, 20))  # the first declined one moved again, to a free time: booked again
    server.settle()
    [(item_class, recurrence_id, _text)] = _occurrence_answers(account)
    assert item_class == "IPM.Schedule.Meeting.Resp.Pos" and recurrence_id == _at(14, 16)
    [declined] = [o for o in _occurrences(account) if o.subject == "Weekly" and o.start == _at(21, 18)]
    declined.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)  # cancelling the other: nothing to free
    server.settle()
    assert _room_occurrences(server, room) == [("Weekly", _at(7, 16), "Busy", "Accept"),
                                               ("Bob's", _at(14, 18), "Busy", "Accept"),
                                               ("Weekly", _at(14, 20), "Busy", "Accept"),
                                               ("Bob's again", _at(21, 18), "Busy", "Accept")]


def test_a_cancelled_occurrence_frees_the_room(account, server, room, booked_series):
    second = [o for o in _occurrences(account) if o.subject == "Weekly"][1]
    second.delete(send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY)
    server.settle()

    [series] = list(make_account(server, room.address).calendar.all())
    assert series.type == "RecurringMaster" and not series.is_cancelled
    assert [o[1] for o in _room_occurrences(server, room)] == [_at(7, 16), _at(21, 16)]
    for day, merged in ((7, "020"), (14, "000"), (21, "020")):  # 2: Busy
        [view] = account.protocol.get_free_busy_info(accounts=[(room.address, "Room", False)], start=_at(day, 15),
                                                     end=_at(day, 18), merged_free_busy_interval=60,
                                                     requested_view="FreeBusyMerged")
        assert view.merged == merged, day


@pytest.mark.parametrize("mode", ["None", "AutoUpdate"])
def test_automate_processing_none_and_auto_update(account, server, server_store, room, mode):
    server_store.calendar_processing.set(room.address, {"AutomateProcessing": mode})
    item = _book(account, room, _at(7, 10))
    server.settle()
    assert _room_response(account, item) == "Unknown"
    assert _answers(account, "Planning") == []
    room_account = make_account(server, room.address)
    assert [m.subject for m in room_account.inbox.all()] == ["Planning"]
    bookings = list(room_account.calendar.all())
    if mode == "None":
        assert bookings == []
    else:
        [tentative] = bookings
        assert tentative.legacy_free_busy_status == "Tentative" and tentative.subject == "Planning"


def test_cli_calendar_processing(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    ok(mailroom("mailbox", "add", "board@example.org", "--room", data=data))
    ok(mailroom("mailbox", "add", "alice@example.org", "--password", "pw", data=data))
    shown = dict(table_rows(ok(mailroom("calendar-processing", "get", "board@example.org", data=data))))
    assert (shown["AutomateProcessing"], shown["AllowConflicts"], shown["BookingWindowInDays"],
            shown["MaximumDurationInMinutes"], shown["AllowRecurringMeetings"], shown["EnforceSchedulingHorizon"],
            shown["ProcessExternalMeetingMessages"], shown["DeleteSubject"]) == (
        "AutoAccept", "false", "180", "1440", "true", "true", "false", "true")
    user = dict(table_rows(ok(mailroom("calendar-processing", "get", "alice@example.org", data=data))))
    assert user["AutomateProcessing"] == "AutoUpdate"

    changed = dict(table_rows(ok(mailroom("calendar-processing", "set", "board@example.org", "--allow-conflicts",
                                          "$true", "--booking-window-in-days", "365", "--automate-processing",
                                          "autoupdate", "--additional-response", "Call 555", data=data))))
    assert (changed["AllowConflicts"], changed["BookingWindowInDays"], changed["AutomateProcessing"],
            changed["AdditionalResponse"]) == ("true", "365", "AutoUpdate", "Call 555")
    fails(mailroom("calendar-processing", "set", "board@example.org", "--booking-window-in-days", "2000", data=data),
          "error:", "BookingWindowInDays", "0..1080")
    fails(mailroom("calendar-processing", "set", "board@example.org", "--automate-processing", "Always", data=data),
          "error:", "AutoAccept")
    fails(mailroom("calendar-processing", "set", "board@example.org", "--allow-conflicts", "maybe", data=data),
          "error:", "true or false")
    fails(mailroom("calendar-processing", "set", "board@example.org", data=data), "error:", "at least one")
    fails(mailroom("calendar-processing", "get", "nobody@example.org", data=data), "error:", "no mailbox")
    kept = dict(table_rows(ok(mailroom("calendar-processing", "get", "board@example.org", data=data))))
    assert kept == changed
