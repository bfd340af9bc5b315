"""Calendar items through exchangelib: fields, time zones, recurrence, CalendarView expansion,
occurrences and exceptions; raw SOAP for the error codes and the Exchange 2007 forms."""

from datetime import datetime, timedelta

import pytest
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import (
    ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
)
from exchangelib.items import SEND_TO_NONE
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    DailyPattern,
    NumberedPattern,
    Recurrence,
    RelativeMonthlyPattern,
    WeeklyPattern,
)

from .soap import codes, envelope, parse, post

BERLIN = EWSTimeZone("Europe/Berlin")
NEW_YORK = EWSTimeZone("America/New_York")
_BOB = "bob@elsewhere.example"


def _at(zone: EWSTimeZone, *args: int) -> EWSDateTime:
    return EWSDateTime(*args, tzinfo=zone)


def _weekly(account, first: EWSDateTime, count: int = 6) -> CalendarItem:
    item = CalendarItem(account=account, folder=account.calendar, subject="Stand-up", start=first,
                        end=first + timedelta(minutes=30),
                        recurrence=Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[first.isoweekday()]),
                                              boundary=NumberedPattern(start=first.date(), number=count)))
    item.save(send_meeting_invitations=SEND_TO_NONE)
    return item


def test_create_get_update_delete_a_calendar_item(account, mailbox):
    start = _at(BERLIN, 2030, 3, 4, 10)
    item = CalendarItem(account=account, folder=account.calendar, subject="Planning", start=start,
                        end=start + timedelta(hours=1), location="Room 1", legacy_free_busy_status="Tentative",
                        sensitivity="Private", reminder_minutes_before_start=30,
                        required_attendees=[Attendee(mailbox=_BOB, response_type="Unknown")])
    item.save(send_meeting_invitations=SEND_TO_NONE)
    got = account.calendar.get(id=item.id)
    assert (got.subject, got.location, got.legacy_free_busy_status, got.sensitivity) == (
        "Planning", "Room 1", "Tentative", "Private")
    assert got.start == start and got.end == start + timedelta(hours=1)
    assert got.reminder_minutes_before_start == 30
    assert got.type == "Single" and got.is_meeting is True and got.uid
    assert got.organizer.email_address == mailbox.address
    assert [a.mailbox.email_address for a in got.required_attendees] == [_BOB]
    assert got._start_timezone.key == "Europe/Berlin" and got._end_timezone.key == "Europe/Berlin"
    got.location = "Room 2"
    got.end = start + timedelta(hours=2)
    got.save(update_fields=["location", "end"], send_meeting_invitations=SEND_TO_NONE)
    again = account.calendar.get(id=item.id)
    assert (again.location, again.end) == ("Room 2", start + timedelta(hours=2))
    again.delete(send_meeting_cancellations=SEND_TO_NONE)
    assert list(account.calendar.all()) == []


def test_view_expands_a_weekly_series_across_a_dst_change(account):
    # Berlin moves to summer time on 2030-03-31: the 09:00 stand-up stays at 09:00 local.
    first = _at(BERLIN, 2030, 3, 18, 9)
    master = _weekly(account, first, count=4)
    got = account.calendar.get(id=master.id)
    assert got.type == "RecurringMaster"
    assert got.first_occurrence.start == first
    assert got.last_occurrence.start == _at(BERLIN, 2030, 4, 8, 9)
    shown = list(account.calendar.view(start=_at(BERLIN, 2030, 3, 1, 0), end=_at(BERLIN, 2030, 5, 1, 0)))
    assert [o.start.astimezone(BERLIN) for o in shown] == [
        _at(BERLIN, 2030, 3, 18, 9), _at(BERLIN, 2030, 3, 25, 9), _at(BERLIN, 2030, 4, 1, 9),
        _at(BERLIN, 2030, 4, 8, 9)]
    assert {o.type for o in shown} == {"Occurrence"}
    assert len({o.id for o in shown}) == 4


def test_view_window_mixes_single_items_and_occurrences_by_start(account):
    daily_start = _at(NEW_YORK, 2030, 6, 3, 8)
    CalendarItem(account=account, folder=account.calendar, subject="Daily", start=daily_start,
                 end=daily_start + timedelta(hours=1),
                 recurrence=Recurrence(pattern=DailyPattern(interval=2), start=daily_start.date())
                 ).save(send_meeting_invitations=SEND_TO_NONE)
    single = _at(NEW_YORK, 2030, 6, 6, 12)
    CalendarItem(account=account, folder=account.calendar, subject="Lunch", start=single,
                 end=single + timedelta(hours=1)).save(send_meeting_invitations=SEND_TO_NONE)
    shown = list(account.calendar.view(start=_at(NEW_YORK, 2030, 6, 4, 0), end=_at(NEW_YORK, 2030, 6, 8, 0)))
    assert [(o.subject, o.start.astimezone(NEW_YORK)) for o in shown] == [
        ("Daily", _at(NEW_YORK, 2030, 6, 5, 8)), ("Lunch", single), ("Daily", _at(NEW_YORK, 2030, 6, 7, 8))]
    limited = list(account.calendar.view(start=_at(NEW_YORK, 2030, 6, 4, 0), end=_at(NEW_YORK, 2030, 6, 8, 0),
                                         max_items=2))
    assert [o.subject for o in limited] == ["Daily", "Lunch"]
    # A series with no end is found far in the future without reading anything else.
    later = list(account.calendar.view(start=_at(NEW_YORK, 2031, 6, 1, 0), end=_at(NEW_YORK, 2031, 6, 3, 0)))
    assert [o.subject for o in later] == ["Daily"]


def test_monthly_patterns(account):
    start = _at(BERLIN, 2030, 1, 31, 15)
    CalendarItem(account=account, folder=account.calendar, subject="Month end", start=start,
                 end=start + timedelta(hours=1),
                 recurrence=Recurrence(pattern=AbsoluteMonthlyPattern(interval=1, day_of_month=31),
                                       boundary=NumberedPattern(start=start.date(), number=3))
                 ).save(send_meeting_invitations=SEND_TO_NONE)
    second_tuesday = _at(BERLIN, 2030, 1, 8, 11)
    CalendarItem(account=account, folder=account.calendar, subject="Second Tuesday", start=second_tuesday,
                 end=second_tuesday + timedelta(hours=1),
                 recurrence=Recurrence(pattern=RelativeMonthlyPattern(interval=1, weekday=2, week_number=2),
                                       boundary=NumberedPattern(start=second_tuesday.date(), number=3))
                 ).save(send_meeting_invitations=SEND_TO_NONE)
    shown = account.calendar.view(start=_at(BERLIN, 2030, 1, 1, 0), end=_at(BERLIN, 2030, 6, 1, 0))
    days = {}
    for o in shown:
        days.setdefault(o.subject, []).append(o.start.astimezone(BERLIN).date().isoformat())
    assert days["Month end"] == ["2030-01-31", "2030-02-28", "2030-03-31"]
    assert days["Second Tuesday"] == ["2030-01-08", "2030-02-12", "2030-03-12"]


def test_occurrences_exceptions_and_deleted_occurrences(account):
    first = _at(BERLIN, 2030, 9, 2, 9)
    master = _weekly(account, first, count=5)
    third = master.occurrence(3)
    third.refresh()
    assert third.type == "Occurrence" and third.start == first + timedelta(weeks=2)
    assert third.recurring_master().refresh().id == master.id
    third.subject = "Stand-up (moved)"
    third.start, third.end = third.start + timedelta(hours=2), third.end + timedelta(hours=2)
    third.save(update_fields=["subject", "start", "end"], send_meeting_invitations=SEND_TO_NONE)
    fourth = master.occurrence(4)
    fourth.refresh()
    fourth.delete(send_meeting_cancellations=SEND_TO_NONE)
    got = account.calendar.get(id=master.id)
    assert [(o.start, o.original_start) for o in got.modified_occurrences] == [
        (first + timedelta(weeks=2, hours=2), first + timedelta(weeks=2))]
    assert [o.start for o in got.deleted_occurrences] == [first + timedelta(weeks=3)]
    shown = list(account.calendar.view(start=first - timedelta(days=1), end=first + timedelta(weeks=6)))
    assert [(o.subject, o.type, o.start) for o in shown] == [
        ("Stand-up", "Occurrence", first), ("Stand-up", "Occurrence", first + timedelta(weeks=1)),
        ("Stand-up (moved)", "Exception", first + timedelta(weeks=2, hours=2)),
        ("Stand-up", "Occurrence", first + timedelta(weeks=4))]
    exception = account.calendar.get(id=got.modified_occurrences[0].id)
    assert exception.subject == "Stand-up (moved)" and exception.type == "Exception"
    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        master.occurrence(4).refresh()
    with pytest.raises(ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange):
        master.occurrence(6).refresh()


def test_changing_the_pattern_drops_exceptions(account):
    first = _at(BERLIN, 2030, 9, 2, 9)
    master = _weekly(account, first, count=5)
    master.occurrence(2).refresh().delete(send_meeting_cancellations=SEND_TO_NONE)
    got = account.calendar.get(id=master.id)
    got.recurrence = Recurrence(pattern=DailyPattern(interval=1),
                                boundary=NumberedPattern(start=first.date(), number=3))
    got.save(update_fields=["recurrence"], send_meeting_invitations=SEND_TO_NONE)
    again = account.calendar.get(id=master.id)
    assert again.deleted_occurrences is None
    shown = list(account.calendar.view(start=first - timedelta(days=1), end=first + timedelta(weeks=6)))
    assert [o.start for o in shown] == [first, first + timedelta(days=1), first + timedelta(days=2)]


def _soap(server, mailbox, body: str, version: str = "Exchange2016"):
    from .conftest import PASSWORD

    return parse(post(server.ews_url, envelope(body, version=version), mailbox.address, PASSWORD))


_CREATE = """<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>
<t:Subject>{subject}</t:Subject><t:Start>{start}</t:Start><t:End>{end}</t:End>{extra}
</t:CalendarItem></m:Items></m:CreateItem>"""


def test_meeting_time_zone_for_exchange_2007_callers(server, mailbox):
    created = _soap(server, mailbox, _CREATE.format(
        subject="Old client", start="2030-01-07T09:00:00", end="2030-01-07T10:00:00",
        extra='<t:MeetingTimeZone TimeZoneName="W. Europe Standard Time"><t:BaseOffset>-PT1H</t:BaseOffset>'
              '</t:MeetingTimeZone>'), version="Exchange2007_SP1")
    assert codes(created) == ["NoError"]
    item_id = created.find(".//{*}ItemId").get("Id")
    get = f"""<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>
<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>"""
    old = _soap(server, mailbox, get, version="Exchange2007_SP1")
    zone = old.find(".//{*}MeetingTimeZone")
    assert zone.get("TimeZoneName") == "W. Europe Standard Time"
    assert zone.findtext("{*}BaseOffset") == "-PT1H"
    rules = {change.tag.split("}")[1]: (change.findtext("{*}Offset"), change.findtext(".//{*}DaysOfWeek"),
                                        change.findtext(".//{*}DayOfWeekIndex"), change.findtext(".//{*}Month"),
                                        change.findtext("{*}Time")) for change in zone[1:]}
    assert rules == {"Standard": ("PT0H", "Sunday", "Last", "October", "03:00:00"),
                     "Daylight": ("-PT1H", "Sunday", "Last", "March", "02:00:00")}  # as Windows has them
    assert old.find(".//{*}StartTimeZone") is None
    new = _soap(server, mailbox, get)
    assert new.find(".//{*}StartTimeZone").get("Id") == "W. Europe Standard Time"
    assert new.find(".//{*}MeetingTimeZone") is None


def test_meeting_time_zone_follows_the_rule_of_the_meeting_year(server, mailbox):
    created = _soap(server, mailbox, _CREATE.format(
        subject="Long ago", start="2005-01-10T09:00:00", end="2005-01-10T10:00:00",
        extra='<t:MeetingTimeZone TimeZoneName="Pacific Standard Time"/>'), version="Exchange2007_SP1")
    item_id = created.find(".//{*}ItemId").get("Id")
    get = f"""<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>
<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>"""
    zone = _soap(server, mailbox, get, version="Exchange2007_SP1").find(".//{*}MeetingTimeZone")
    assert zone.findtext("{*}BaseOffset") == "PT8H"
    assert (zone.findtext("{*}Daylight//{*}DayOfWeekIndex"), zone.findtext("{*}Daylight//{*}Month")) == (
        "First", "April")  # the United States' rule before 2007


@pytest.mark.parametrize(("extra", "code"), [
    ("", "ErrorCalendarEndDateIsEarlierThanStartDate"),
    ('<t:StartTimeZone Id="Mars Standard Time"/>', "ErrorCalendarInvalidTimeZone"),
    ("<t:Recurrence><t:AbsoluteMonthlyRecurrence><t:Interval>1</t:Interval><t:DayOfMonth>32</t:DayOfMonth>"
     "</t:AbsoluteMonthlyRecurrence><t:NoEndRecurrence><t:StartDate>2030-01-01</t:StartDate></t:NoEndRecurrence>"
     "</t:Recurrence>", "ErrorCalendarOutOfRange"),
    ("<t:Recurrence><t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Weekday</t:DaysOfWeek>"
     "</t:WeeklyRecurrence><t:NoEndRecurrence><t:StartDate>2030-01-01</t:StartDate></t:NoEndRecurrence>"
     "</t:Recurrence>", "ErrorCalendarInvalidDayForWeeklyRecurrence"),
    ("<t:Recurrence><t:DailyRegeneration><t:Interval>1</t:Interval></t:DailyRegeneration>"
     "<t:NoEndRecurrence><t:StartDate>2030-01-01</t:StartDate></t:NoEndRecurrence></t:Recurrence>",
     "ErrorCalendarInvalidRecurrence"),
])
def test_invalid_calendar_items_get_their_codes_and_store_nothing(server, mailbox, server_store, extra, code):
    # Recurrence must come before StartTimeZone in the schema's order; each case carries one of them.
    end = "2030-01-07T10:00:00Z" if extra else "2030-01-07T08:00:00Z"
    answer = _soap(server, mailbox, _CREATE.format(subject="Bad", start="2030-01-07T09:00:00Z", end=end, extra=extra))
    assert codes(answer) == [code]
    calendar = server_store.folders.distinguished(mailbox, "calendar")
    assert server_store.folders.get(mailbox, calendar.id).total_count == 0


def test_calendar_view_errors(server, mailbox):
    def find(start: str, end: str, folder: str = "calendar") -> list[str]:
        return codes(_soap(server, mailbox, f"""<m:FindItem Traversal="Shallow"><m:ItemShape>
<t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:CalendarView StartDate="{start}" EndDate="{end}"/>
<m:ParentFolderIds><t:DistinguishedFolderId Id="{folder}"/></m:ParentFolderIds></m:FindItem>"""))

    assert find("2030-01-02T00:00:00Z", "2030-01-01T00:00:00Z") == ["ErrorCalendarEndDateIsEarlierThanStartDate"]
    assert find("2030-01-01T00:00:00Z", "2033-01-01T00:00:00Z") == ["ErrorCalendarViewRangeTooBig"]
    assert find("2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z", "inbox") == [
        "ErrorCalendarFolderIsInvalidForCalendarView"]
    assert find("2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z") == ["NoError"]


def test_naive_times_are_read_in_the_time_zone_context(account):
    # exchangelib sends TimeZoneContext with the account's zone; the stored instant must match.
    start = _at(NEW_YORK, 2030, 3, 10, 1)  # the night New York starts daylight saving time
    item = CalendarItem(account=account, folder=account.calendar, subject="Early", start=start,
                        end=start + timedelta(hours=3))
    item.save(send_meeting_invitations=SEND_TO_NONE)
    got = account.calendar.get(id=item.id)
    assert (got.start, got.end) == (start, start + timedelta(hours=3))  # wall-clock sum: 2 real hours
    assert got.end - got.start == timedelta(hours=2)
    assert got.start.astimezone(NEW_YORK).replace(tzinfo=None) == datetime(2030, 3, 10, 1)


# -- GetUserAvailability ---------------------------------------------------------------------------
def test_free_busy_merged_and_detailed_from_the_calendars(server, server_store, account, mailbox):
    from exchangelib.errors import ErrorMailRecipientNotFound

    from .conftest import make_account, new_mailbox

    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob Example")
    bob_account = make_account(server, bob.address)
    day = _at(BERLIN, 2030, 5, 6, 0)  # a Monday
    _weekly(bob_account, day + timedelta(hours=9), count=3)  # 09:00-09:30, Busy
    CalendarItem(account=bob_account, folder=bob_account.calendar, subject="Maybe", start=day + timedelta(hours=11),
                 end=day + timedelta(hours=12), legacy_free_busy_status="Tentative",
                 ).save(send_meeting_invitations=SEND_TO_NONE)
    CalendarItem(account=bob_account, folder=bob_account.calendar, subject="Secret", sensitivity="Private",
                 start=day + timedelta(hours=13), end=day + timedelta(hours=14),
                 ).save(send_meeting_invitations=SEND_TO_NONE)
    views = list(account.protocol.get_free_busy_info(
        accounts=[(bob.address, "Required", False), (mailbox.address, "Optional", False),
                  ("nobody@nowhere.example", "Required", False)],
        start=day + timedelta(hours=8), end=day + timedelta(hours=15), merged_free_busy_interval=60,
        requested_view="DetailedMerged"))
    bob_view, own_view, unknown = views
    assert bob_view.view_type == "DetailedMerged"
    # 08 free, 09 busy, 10 free, 11 tentative, 12 free, 13 busy (private), 14 free
    assert bob_view.merged == "0201020"
    assert [(e.start.astimezone(BERLIN), e.busy_type) for e in bob_view.calendar_events] == [
        (day + timedelta(hours=9), "Busy"), (day + timedelta(hours=11), "Tentative"),
        (day + timedelta(hours=13), "Busy")]
    assert all(e.details is None for e in bob_view.calendar_events)  # another's calendar: times only
    assert own_view.merged == "0000000" and not own_view.calendar_events
    assert isinstance(unknown, ErrorMailRecipientNotFound)
    own_start = day + timedelta(hours=10)
    CalendarItem(account=account, folder=account.calendar, subject="Mine", start=own_start,
                 end=own_start + timedelta(minutes=30)).save(send_meeting_invitations=SEND_TO_NONE)
    mine = next(iter(account.protocol.get_free_busy_info(
        accounts=[(mailbox.address, "Required", False)], start=day, end=day + timedelta(days=1),
        requested_view="Detailed")))
    assert mine.merged is None
    assert [e.details.subject for e in mine.calendar_events] == ["Mine"]


def test_availability_windows_are_checked(server, mailbox):
    body = """<m:GetUserAvailabilityRequest><m:MailboxDataArray><t:MailboxData><t:Email>
<t:Address>{address}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData>
</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>{start}</t:StartTime>
<t:EndTime>{end}</t:EndTime></t:TimeWindow><t:RequestedView>FreeBusy</t:RequestedView></t:FreeBusyViewOptions>
</m:GetUserAvailabilityRequest>"""

    def answer(start: str, end: str) -> list[str]:
        return codes(_soap(server, mailbox, body.format(address=mailbox.address, start=start, end=end)))

    assert answer("2030-01-02T00:00:00", "2030-01-01T00:00:00") == ["ErrorInvalidTimeInterval"]
    assert answer("2030-01-01T00:00:00", "2030-06-01T00:00:00") == ["ErrorTimeIntervalTooBig"]
    assert answer("2030-01-01T00:00:00", "2030-01-02T00:00:00") == ["NoError"]


def test_suggestions_rank_slots_by_attendee_availability(server, server_store, account, mailbox):
    from .conftest import make_account, new_mailbox

    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob Example")
    bob_account = make_account(server, bob.address)
    busy = EWSDateTime(2030, 5, 6, 8, tzinfo=EWSTimeZone("UTC"))  # Monday 08:00-12:00 UTC
    CalendarItem(account=bob_account, folder=bob_account.calendar, subject="Busy morning", start=busy,
                 end=busy + timedelta(hours=4)).save(send_meeting_invitations=SEND_TO_NONE)
    body = f"""<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias>
<t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek>
</t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder>
<t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone><m:MailboxDataArray>
<t:MailboxData><t:Email><t:Address>{bob.address}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType>
</t:MailboxData><t:MailboxData><t:Email><t:Address>{mailbox.address}</t:Address></t:Email>
<t:AttendeeType>Required</t:AttendeeType></t:MailboxData></m:MailboxDataArray><t:SuggestionsViewOptions>
<t:MeetingDurationInMinutes>60</t:MeetingDurationInMinutes><t:MinimumSuggestionQuality>Poor</t:MinimumSuggestionQuality>
<t:DetailedSuggestionsWindow><t:StartTime>2030-05-06T00:00:00</t:StartTime><t:EndTime>2030-05-07T00:00:00</t:EndTime>
</t:DetailedSuggestionsWindow></t:SuggestionsViewOptions></m:GetUserAvailabilityRequest>"""
    root = _soap(server, mailbox, body)
    assert codes(root) == ["NoError"]
    slots = {s.findtext("{*}MeetingTime"): s.findtext("{*}SuggestionQuality") for s in root.iter("{*}Suggestion")}
    assert slots["2030-05-06T08:00:00"] == "Fair"  # one of two attendees busy
    assert slots["2030-05-06T11:30:00"] == "Fair"
    assert slots["2030-05-06T12:00:00"] == "Excellent"
    assert "2030-05-06T16:30:00" not in slots  # a one-hour meeting must end by 17:00
    assert root.findtext(".//{*}DayQuality") == "Excellent"
