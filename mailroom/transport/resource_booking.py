"""The Resource Booking Attendant: what Exchange does with a meeting request delivered to a
mailbox whose calendar processing (store/calendar_processing.py, Set-CalendarProcessing) is
AutoAccept — a room or equipment by default.

The calendar attendant (attendant.py) has placed the request in the resource's Calendar as for
any attendee; here it is judged against the resource's policy (recurrence, duration, booking
window, external organizers) and its calendar (every occurrence inside the booking window
against the free/busy times of everything else booked). Accepted: the booking is Busy and
Accepted, keeping only what the policy keeps (subject, organizer, body). Declined: the booking
is removed (an update that no longer fits frees the resource). Either way the organizer gets a
meeting response (METHOD:REPLY), sent by the transport like any other message (to an organizer
on another server too), which the organizer's calendar attendant records on the meeting; a
cancellation removes the booking. AutomateProcessing None leaves
requests in the Inbox untouched; AutoUpdate is the calendar attendant alone.

A request or cancellation for one occurrence of a booked series (RECURRENCE-ID) is handled the
same way for that occurrence: judged like a single meeting (the rest of the series is not in its
way), accepted as an exception of the series or deleted from it, and answered with the
RECURRENCE-ID, so the organizer's attendant records the answer on that occurrence.
"""

from __future__ import annotations

import email.utils
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mailroom.content import meetings, recipients
from mailroom.content.meetings import Attendee, Meeting
from mailroom.content.recipients import Address
from mailroom.ews import availability, calendar
from mailroom.ews.dates import parse_utc
from mailroom.store import Store
from mailroom.store.calendar_processing import CalendarProcessing
from mailroom.store.model import Body, Item, ItemChanges, Mailbox, utcnow

from .envelope import Recipient, Submission

ACCEPTED = "Your request was accepted."
DECLINED = "Your request was declined."


def places(settings: CalendarProcessing) -> bool:
    """Whether requests to the mailbox go into its Calendar at all (not with AutomateProcessing None)."""
    return settings.automate_processing != "None"


def decide(store: Store, mailbox: Mailbox, settings: CalendarProcessing, meeting: Meeting, item: Item,
           props: dict[str, Any]) -> Submission | None:
    """Book or decline a request the calendar attendant has just placed as ``item`` when the
    mailbox (with these ``settings``) auto-accepts: a meeting, or the occurrence of a booked
    series that a request with a RECURRENCE-ID changed, judged on its own (``props``: the request
    message being delivered). Returns the answer to the organizer."""
    if settings.automate_processing != "AutoAccept" or props.get("IsOutOfDate"):
        return None
    reasons, dropped = _judge(store, mailbox, settings, meeting, item)
    if reasons:
        calendar.discard(store, mailbox, item)
        props.pop("_AssociatedCalendarItem", None)
        props["MyResponseType"] = "Decline"
        return _answer(mailbox, settings, meeting, "Decline", [DECLINED, *reasons])
    for occurrence in dropped:  # the conflicting occurrences of a series accepted despite them
        calendar.discard(store, mailbox, occurrence)
    calendar.record(store, mailbox, item, ItemChanges(
        set_props={"LegacyFreeBusyStatus": "Busy", "MyResponseType": "Accept", "AppointmentReplyTime": utcnow(),
                   "Subject": _subject(settings, meeting)},
        delete_body=settings.delete_comments))
    props["MyResponseType"] = "Accept"
    declined = ["These occurrences conflict with other bookings and were declined:", *_times(meeting, dropped)]
    return _answer(mailbox, settings, meeting, "Accept", [ACCEPTED, *(declined if dropped else [])])


def cancelled(store: Store, mailbox: Mailbox, item: Item, props: dict[str, Any]) -> None:
    """A cancellation frees an auto-accepting resource at once: its booking (or the one occurrence
    cancelled) is removed."""
    if store.calendar_processing.get(mailbox).automate_processing == "AutoAccept":
        calendar.discard(store, mailbox, item)
        props.pop("_AssociatedCalendarItem", None)


def _judge(store: Store, mailbox: Mailbox, settings: CalendarProcessing, meeting: Meeting,
           item: Item) -> tuple[list[str], list[Item]]:
    """Why the request is declined (nothing: it is booked), and the occurrences of a series to
    decline on their own (within MaximumConflictInstances and ConflictPercentageAllowed)."""
    organizer = meeting.organizer.email if meeting.organizer else None
    if not settings.process_external_meeting_messages and not (
            organizer and store.directory.accepts(organizer.rpartition("@")[2])):
        return ["The resource does not accept meeting requests from outside the organization."], []
    recurring = bool(item.props.get("Recurrence"))
    if recurring and not settings.allow_recurring_meetings:
        return ["Recurring meetings are not allowed for this resource."], []
    limit = settings.maximum_duration_in_minutes
    if limit and meeting.end - meeting.start > timedelta(minutes=limit):
        return [f"The meeting is longer than the maximum duration of {limit} minutes."], []
    now = datetime.now(UTC)
    horizon = now + timedelta(days=settings.booking_window_in_days)
    beyond = [f"The meeting is outside the booking window: it can be booked at most "
              f"{settings.booking_window_in_days} days in advance."]
    occurrences = list(calendar.expand(item, now, horizon)) if recurring else [item]
    span_end = parse_utc(item.props.get("_SpanEnd", item.props["End"]))  # an occurrence: its own end
    if span_end > horizon and (not recurring or settings.enforce_scheduling_horizon or not occurrences):
        return beyond, []
    if settings.schedule_only_during_work_hours and not _in_work_hours(store, mailbox, meeting, occurrences):
        return ["The meeting is outside the resource's working hours."], []
    conflicts = _conflicts(store, mailbox, meeting.uid, occurrences)
    if not conflicts or settings.allow_conflicts:
        return [], []
    share = 100 * len(conflicts) / len(occurrences)
    if recurring and len(conflicts) <= settings.maximum_conflict_instances \
            and share <= settings.conflict_percentage_allowed:
        return [], conflicts
    return ["The resource is already booked at these times:", *_times(meeting, conflicts)], []


def _conflicts(store: Store, mailbox: Mailbox, uid: str, occurrences: list[Item]) -> list[Item]:
    """The occurrences that overlap busy time of anything else in the resource's calendar."""
    if not occurrences:
        return []
    start = min(parse_utc(o.props["Start"]) for o in occurrences)
    end = max(parse_utc(o.props["End"]) for o in occurrences)
    others = [e for e in availability.events(store, mailbox, start, end) if e.item.props.get("UID") != uid]
    return [o for o in occurrences if availability.is_busy(
        availability.status_between(others, parse_utc(o.props["Start"]), parse_utc(o.props["End"])))]


def _in_work_hours(store: Store, mailbox: Mailbox, meeting: Meeting, occurrences: list[Item]) -> bool:
    """Whether every occurrence lies in the resource's working hours (without a zone of their own,
    in the meeting's)."""
    hours = store.working_hours.get(mailbox)
    return all(availability.is_work_time(hours, meeting.zone, parse_utc(o.props["Start"]), parse_utc(o.props["End"]))
               for o in occurrences)


def _times(meeting: Meeting, occurrences: list[Item]) -> list[str]:
    """The occurrences' times as the organizer reads them (in the meeting's time zone)."""
    shown = []
    for occurrence in occurrences:
        start = parse_utc(occurrence.props["Start"]).astimezone(meeting.zone)
        end = parse_utc(occurrence.props["End"]).astimezone(meeting.zone)
        shown.append(f"  {start:%A %Y-%m-%d %H:%M} - {end:%H:%M}")
    return shown


def _subject(settings: CalendarProcessing, meeting: Meeting) -> str:
    """What the booking is called: the organizer's name (AddOrganizerToSubject) and the request's
    subject unless DeleteSubject."""
    organizer = meeting.organizer.name or meeting.organizer.email if meeting.organizer else None
    parts = [organizer if settings.add_organizer_to_subject else None,
             None if settings.delete_subject else meeting.subject]
    return " ".join(p for p in parts if p)


def _answer(mailbox: Mailbox, settings: CalendarProcessing, meeting: Meeting, response: str,
            lines: list[str]) -> Submission | None:
    """The resource's meeting response to the organizer."""
    organizer = meeting.organizer
    if organizer is None or not organizer.email:
        return None
    if settings.add_additional_response and settings.additional_response:
        lines = [*lines, "", settings.additional_response]
    me = Address(mailbox.display_name, mailbox.address)
    verb, item_class = meetings.RESPONSES[response]
    reply = replace(meeting, method="REPLY", attendees=[Attendee(me, "Resources", response)], recurrence=None,
                    stamp=datetime.now(UTC))
    props = {"ItemClass": item_class, "Subject": f"{verb}: {meeting.subject}", "DateTimeSent": utcnow(),
             "From": recipients.build("From", [me], single=True),
             "ToRecipients": recipients.build("ToRecipients", [organizer]),
             "InternetMessageId": email.utils.make_msgid(domain=mailbox.address.rpartition("@")[2])}
    raw = meetings.build_message(props, Body("Text", "\n".join(lines)), reply)
    return Submission(mail_from=mailbox.address, recipients=(Recipient(organizer.email),), raw=raw,
                      source="STOREDRIVER", connector="resourcebooking", submitter=mailbox.address)
