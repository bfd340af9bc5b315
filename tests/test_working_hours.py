"""Per-mailbox working hours (Set-MailboxCalendarConfiguration): GetUserAvailability reports them
in their own zone and keeps meeting suggestions inside everyone's; `mailroom mailbox set
--work-days/--working-hours-*` and `mailbox show`."""

from __future__ import annotations

from datetime import timedelta

from exchangelib import EWSDateTime, EWSTimeZone

from mailroom.store.working_hours import WorkingHours

from .conftest import PASSWORD, new_mailbox
from .soap import codes, envelope, parse, post
from .test_cli import fails, mailroom, ok

_UTC = """<t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time>
<t:DayOrder>0</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime><t:DaylightTime>
<t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder><t:Month>0</t:Month>
<t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime></t:TimeZone>"""


def _suggestions(server, mailbox, addresses: list[str], start: str, end: str):
    people = "".join(f"<t:MailboxData><t:Email><t:Address>{a}</t:Address></t:Email><t:AttendeeType>Required"
                     f"</t:AttendeeType></t:MailboxData>" for a in addresses)
    body = f"""<m:GetUserAvailabilityRequest>{_UTC}<m:MailboxDataArray>{people}</m:MailboxDataArray>
<t:SuggestionsViewOptions><t:MaximumResultsByDay>48</t:MaximumResultsByDay><t:MeetingDurationInMinutes>60</t:MeetingDurationInMinutes>
<t:MinimumSuggestionQuality>Poor</t:MinimumSuggestionQuality><t:DetailedSuggestionsWindow>
<t:StartTime>{start}</t:StartTime><t:EndTime>{end}</t:EndTime></t:DetailedSuggestionsWindow>
</t:SuggestionsViewOptions></m:GetUserAvailabilityRequest>"""
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert codes(root) == ["NoError"]
    return root


def test_working_hours_in_free_busy_and_suggestions(server, server_store, account, mailbox):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob Example")
    hours = WorkingHours((0, 1, 2), 9 * 60 + 30, 15 * 60, "W. Europe Standard Time")
    server_store.working_hours.set(bob.address, hours)
    utc = EWSTimeZone("UTC")
    monday = EWSDateTime(2030, 5, 6, 0, tzinfo=utc)
    bob_view, own_view = account.protocol.get_free_busy_info(
        accounts=[(bob.address, "Required", False), (mailbox.address, "Required", False)], start=monday,
        end=monday + timedelta(days=1), requested_view="FreeBusy")
    [period] = bob_view.working_hours
    assert (period.weekdays, period.start.strftime("%H:%M"), period.end.strftime("%H:%M")) == (
        [1, 2, 3], "09:30", "15:00")  # ISO weekdays
    assert bob_view.working_hours_timezone.bias == -60  # W. Europe's standard offset, UTC+1
    [period] = own_view.working_hours  # Exchange's default hours
    assert (period.weekdays, period.start.strftime("%H:%M"), period.end.strftime("%H:%M")) == (
        [1, 2, 3, 4, 5], "08:00", "17:00")

    # Bob works 07:30-13:00 UTC in May (CEST), Alice 08:00-17:00 in the requester's zone (UTC):
    # a one-hour meeting may start from 08:00 to 12:00 UTC, and not on Thursday, Bob's day off.
    root = _suggestions(server, mailbox, [bob.address, mailbox.address], "2030-05-06T00:00:00",
                        "2030-05-10T00:00:00")
    days = {d.findtext("{*}Date")[:10]: [s.findtext("{*}MeetingTime")[11:16] for s in d.iter("{*}Suggestion")]
            for d in root.iter("{*}SuggestionDayResult")}
    assert days["2030-05-06"] == ["08:00", "08:30", "09:00", "09:30", "10:00", "10:30", "11:00", "11:30", "12:00"]
    assert days["2030-05-09"] == []
    assert all(s.findtext("{*}IsWorkTime") == "true" for s in root.iter("{*}Suggestion"))
    alone = _suggestions(server, mailbox, [mailbox.address], "2030-05-06T00:00:00", "2030-05-07T00:00:00")
    times = [s.findtext("{*}MeetingTime")[11:16] for s in alone.iter("{*}Suggestion")]
    assert times[0] == "08:00" and times[-1] == "16:00" and len(times) == 17


def test_cli_working_hours(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    ok(mailroom("mailbox", "add", "alice@example.org", "--password", "pw", data=data))
    assert "Monday Tuesday Wednesday Thursday Friday 08:00-17:00 (the zone of whoever asks)" in ok(
        mailroom("mailbox", "show", "alice@example.org", data=data))
    ok(mailroom("mailbox", "set", "alice@example.org", "--work-days", "Mon,Tue,Thu", "--working-hours-start-time",
                "07:30", "--working-hours-time-zone", "Europe/Berlin", data=data))
    shown = ok(mailroom("mailbox", "show", "alice@example.org", data=data))
    assert "WorkingHours: Monday Tuesday Thursday 07:30-17:00 (W. Europe Standard Time)" in shown
    ok(mailroom("mailbox", "set", "alice@example.org", "--work-days", "weekdays", "--working-hours-end-time", "16:00",
                "--working-hours-time-zone", "", data=data))
    assert "Monday Tuesday Wednesday Thursday Friday 07:30-16:00 (the zone of whoever asks)" in ok(
        mailroom("mailbox", "show", "alice@example.org", data=data))
    fails(mailroom("mailbox", "set", "alice@example.org", "--working-hours-start-time", "18:00", data=data),
          "error:", "start before they end")
    fails(mailroom("mailbox", "set", "alice@example.org", "--work-days", "Someday", data=data), "error:", "Weekdays")
    fails(mailroom("mailbox", "set", "alice@example.org", "--working-hours-time-zone", "Mars/Base", data=data),
          "error:", "Windows time zone id")
    fails(mailroom("mailbox", "set", "alice@example.org", "--working-hours-end-time", "5pm", data=data),
          "error:", "HH:MM")
    assert "07:30-16:00" in ok(mailroom("mailbox", "show", "alice@example.org", data=data))
