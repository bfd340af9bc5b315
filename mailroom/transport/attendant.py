"""The calendar attendant: what Exchange does with a meeting message as it is delivered, whoever
sent it (a local mailbox through the queue, or another server over SMTP).

A request is stored as IPM.Schedule.Meeting.Request and puts a tentative meeting in the
attendee's Calendar (a later request for the same UID updates it); a reply
(IPM.Schedule.Meeting.Resp.*) records the attendee's response on the organizer's meeting; a
cancellation (IPM.Schedule.Meeting.Canceled) marks the attendee's meeting cancelled, to be
removed by the attendee (RemoveItem), as Outlook shows it. A message with a RECURRENCE-ID does
the same to that one occurrence of the mailbox's series (an exception of it).
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailroom.content import recipients
from mailroom.content.meetings import RESPONSES, Attendee, Meeting, attendee_props, read_attendees
from mailroom.content.recipients import Address
from mailroom.ews import calendar, timezones
from mailroom.store import Store
from mailroom.store.model import Body, Item, ItemChanges, Mailbox, NewItem, utcnow
from mailroom.store.query import Compare, Prop

from . import resource_booking
from .envelope import Submission

_TEXT = "%Y-%m-%dT%H:%M:%SZ"
STATE_MEETING, STATE_RECEIVED, STATE_CANCELLED = 1, 2, 4  # AppointmentState flags
log = logging.getLogger(__name__)
_BODY_TAG = re.compile(r"<body[^>]*>", re.IGNORECASE)


def calendar_item(store: Store, mailbox: Mailbox, uid: str, calendar_id: int | None = None) -> Item | None:
    """The meeting with this UID in the mailbox's Calendar (``calendar_id``, when known), if there is one."""
    if calendar_id is None:
        calendar_id = store.folders.distinguished(mailbox, "calendar").id
    found, _ = store.items.find(mailbox, calendar_id, where=Compare(Prop("UID"), "eq", uid))
    return found[0] if found else None


def zone_id(meeting: Meeting) -> str:
    key = meeting.zone.key if isinstance(meeting.zone, ZoneInfo) else None
    return (timezones.windows_id_for(key) if key else None) or "UTC"


def meeting_props(meeting: Meeting) -> dict[str, Any]:
    """What a meeting message and a calendar item share: the time, place and people."""
    props: dict[str, Any] = {
        "UID": meeting.uid, "Start": meeting.start.strftime(_TEXT), "End": meeting.end.strftime(_TEXT),
        "IsAllDayEvent": meeting.all_day, "AppointmentSequenceNumber": meeting.sequence, "Location": meeting.location,
        "Recurrence": meeting.recurrence,
        "Organizer": recipients.build("Organizer", [meeting.organizer], single=True) if meeting.organizer else None}
    props.update(attendee_props(meeting.attendees))
    return {k: v for k, v in props.items() if v is not None}


def process(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any],
            body: Body | None) -> Submission | None:
    """Complete the delivered message's ``props`` as the meeting message it is, and bring the
    mailbox's Calendar in step with it. Returns what the mailbox answers, for the transport to
    send: an auto-accepting resource's meeting response to a request."""
    props.update(UID=meeting.uid, DateTimeStamp=(meeting.stamp or meeting.start).strftime(_TEXT),
                 HasBeenProcessed=True, IsDelegated=False, IsOutOfDate=False)
    if meeting.recurrence_id is not None:
        props["RecurrenceId"] = meeting.recurrence_id.strftime(_TEXT)
    if meeting.method == "REQUEST":
        return _request(store, mailbox, meeting, props, body)
    {"REPLY": _reply, "CANCEL": _cancel, "COUNTER": _counter}[meeting.method](store, mailbox, meeting, props, body)
    return None


def _is_me(mailbox: Mailbox, address: Address | None) -> bool:
    return bool(address and address.email and address.email.lower() in (mailbox.address, *mailbox.aliases))


def _request(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any],
             body: Body | None) -> Submission | None:
    shared = meeting_props(meeting)
    props.update(shared, ItemClass="IPM.Schedule.Meeting.Request", IntendedFreeBusyStatus="Busy",
                 LegacyFreeBusyStatus="Tentative", IsMeeting=True, MeetingRequestWasSent=False, IsCancelled=False,
                 IsOrganizer=_is_me(mailbox, meeting.organizer), ResponseType="NoResponseReceived",
                 MyResponseType="NoResponseReceived", AppointmentState=STATE_MEETING | STATE_RECEIVED,
                 CalendarItemType="RecurringMaster" if meeting.recurrence else "Single")
    if props["IsOrganizer"]:
        return None  # the organizer's own copy: its calendar already holds the meeting
    settings = store.calendar_processing.get(mailbox)
    if not resource_booking.places(settings):
        return None  # left to the owner
    calendar_id = store.folders.distinguished(mailbox, "calendar").id
    existing = calendar_item(store, mailbox, meeting.uid, calendar_id)
    occurrence = _occurrence(existing, meeting)
    if occurrence is not None:
        booking = _request_occurrence(store, mailbox, existing, occurrence, meeting, props, body)
        return resource_booking.decide(store, mailbox, settings, meeting, booking, props)
    if existing is None:
        props["MeetingRequestType"] = "NewMeetingRequest"
        item = _tentative(store, mailbox, calendar_id, meeting, shared, body)
    elif int(existing.props.get("AppointmentSequenceNumber") or 0) > meeting.sequence:
        props.update(MeetingRequestType="Outdated", IsOutOfDate=True)
        item = existing
    else:
        moved = (existing.props.get("Start"), existing.props.get("End")) != (shared["Start"], shared["End"])
        props["MeetingRequestType"] = "FullUpdate" if moved else "InformationalUpdate"
        item = _update_tentative(store, mailbox, existing, meeting, shared, body, reset=moved)
    props["MyResponseType"] = item.props.get("MyResponseType", "NoResponseReceived")
    props["_AssociatedCalendarItem"] = item.id
    _with_exceptions(store, mailbox, item, meeting)
    return resource_booking.decide(store, mailbox, settings, meeting, item, props)


def _calendar_props(mailbox: Mailbox, meeting: Meeting, shared: dict[str, Any], creating: bool) -> dict[str, Any]:
    props = {"ItemClass": "IPM.Appointment", "Subject": meeting.subject, **shared, "IsMeeting": True,
             "MeetingRequestWasSent": False, "IsCancelled": False, "IsResponseRequested": True,
             "AppointmentState": STATE_MEETING | STATE_RECEIVED}
    zone = zone_id(meeting)
    calendar.complete(props, mailbox, creating, zone, zone, zone)
    return props


def _tentative(store: Store, mailbox: Mailbox, calendar_id: int, meeting: Meeting, shared: dict[str, Any],
               body: Body | None) -> Item:
    """The tentative meeting the attendant puts in the Calendar until the attendee responds."""
    props = _calendar_props(mailbox, meeting, shared, creating=True)
    props.update(LegacyFreeBusyStatus="Tentative", MyResponseType="NoResponseReceived", IsRead=True,
                 DateTimeReceived=utcnow())
    created = store.items.create(mailbox, calendar_id, NewItem(props=props, body=_noted(mailbox, meeting, body)))
    return _without(store, mailbox, created, meeting.excluded)


def _update_tentative(store: Store, mailbox: Mailbox, existing: Item, meeting: Meeting, shared: dict[str, Any],
                      body: Body | None, reset: bool) -> Item:
    """An updated request: the meeting takes the new details; a new time asks for a new response."""
    props = {**existing.props, **_calendar_props(mailbox, meeting, shared, creating=False)}
    for role in ("RequiredAttendees", "OptionalAttendees", "Resources", "Recurrence", "Location"):
        if role not in shared:
            props.pop(role, None)
    if reset:
        props.update(LegacyFreeBusyStatus="Tentative", MyResponseType="NoResponseReceived")
    changes = ItemChanges(set_props={k: v for k, v in props.items() if existing.props.get(k) != v},
                          delete_props=[k for k in existing.props if k not in props],
                          body=_noted(mailbox, meeting, body))
    return _without(store, mailbox, store.items.update(mailbox, existing.id, changes), meeting.excluded)


def _reply(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any],
           body: Body | None) -> Item | None:
    """Record the response on the organizer's meeting; returns that meeting as it was found, if any."""
    responder = meeting.attendees[0] if meeting.attendees else None
    response = responder.response if responder else "NoResponseReceived"
    props.update({k: v for k, v in meeting_props(meeting).items() if k in ("Start", "End", "Location", "UID")},
                 ItemClass=RESPONSES.get(response, RESPONSES["Tentative"])[1],
                 ResponseType=response if response in RESPONSES else "Unknown", IsOrganizer=True)
    existing = calendar_item(store, mailbox, meeting.uid)
    if existing is None or responder is None:
        return existing
    props["_AssociatedCalendarItem"] = existing.id
    occurrence = _occurrence(existing, meeting)
    if occurrence is not None:  # a response to one occurrence is recorded on it (not if deleted here)
        if not calendar.is_deleted(existing, occurrence):
            store.items.update(mailbox, existing.id, calendar.exception_changes(existing, occurrence, ItemChanges(
                set_props={k: v for k, v in _responded(occurrence, responder, props["ResponseType"]).items() if v})))
        return existing
    if existing.props.get("Recurrence"):
        props["Recurrence"] = existing.props["Recurrence"]
    roles = _responded(existing, responder, props["ResponseType"])
    store.items.update(mailbox, existing.id, ItemChanges(
        set_props={k: v for k, v in roles.items() if v}, keep_mime=True,
        delete_props=[k for k, v in roles.items() if not v and k in existing.props]))
    return existing


def _responded(item: Item, responder: Attendee, response: str) -> dict[str, str | None]:
    """The meeting's attendee properties with ``responder``'s response recorded."""
    attendees = read_attendees(item.props)
    if not any(a.key == responder.key for a in attendees):
        attendees.append(Attendee(responder.address, "OptionalAttendees"))  # someone the meeting was forwarded to
    for attendee in attendees:
        if attendee.key == responder.key:
            attendee.response, attendee.responded, attendee.proposed = response, utcnow(), responder.proposed
    return attendee_props(attendees)


def _counter(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None) -> None:
    """A response proposing a new time (METHOD:COUNTER; its DTSTART/DTEND are the proposal): a
    reply like any other whose proposal is kept with the attendee's response and on the message
    (ProposedStart / ProposedEnd), the meeting's own time unchanged."""
    proposed = (meeting.start.strftime(_TEXT), meeting.end.strftime(_TEXT))
    for attendee in meeting.attendees[:1]:
        attendee.proposed = proposed
    existing = _reply(store, mailbox, meeting, props, body)  # the meeting as found: its times are not changed
    props.update(ProposedStart=proposed[0], ProposedEnd=proposed[1])
    shown = _occurrence(existing, meeting) or existing
    if shown is not None:
        props.update(Start=shown.props["Start"], End=shown.props["End"])


def _cancel(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None) -> None:
    props.update(meeting_props(meeting), ItemClass="IPM.Schedule.Meeting.Canceled", ResponseType="NoResponseReceived",
                 IsOrganizer=_is_me(mailbox, meeting.organizer))
    existing = calendar_item(store, mailbox, meeting.uid)
    if existing is None or props["IsOrganizer"]:
        return
    props["_AssociatedCalendarItem"] = existing.id
    target = _occurrence(existing, meeting) or existing  # a RECURRENCE-ID: that occurrence alone
    if calendar.is_occurrence(target) and calendar.is_deleted(existing, target):
        return  # it was deleted here already
    calendar.record(store, mailbox, target, ItemChanges(set_props=_cancelled(target)))
    resource_booking.cancelled(store, mailbox, target, props)


def _cancelled(item: Item) -> dict[str, Any]:
    """What a cancellation changes on the attendee's meeting (or occurrence)."""
    subject = item.props.get("Subject") or ""
    state = int(item.props.get("AppointmentState") or STATE_MEETING) | STATE_CANCELLED
    return {"IsCancelled": True, "AppointmentState": state, "LegacyFreeBusyStatus": "Free",
            "Subject": subject if subject.startswith("Canceled: ") else f"Canceled: {subject}"}


# -- one occurrence of a series ----------------------------------------------------------------
def _without(store: Store, mailbox: Mailbox, item: Item, excluded: list[datetime]) -> Item:
    """The series with the occurrences its organizer deleted (EXDATE) deleted here too."""
    for moment in excluded if item.props.get("Recurrence") else []:
        occurrence = calendar.occurrence_at(item, moment)
        if occurrence is not None:
            item = store.items.update(mailbox, item.id, calendar.deletion_changes(item, occurrence.props["_Instance"]))
    return item


def _noted(mailbox: Mailbox, meeting: Meeting, body: Body | None) -> Body | None:
    """A series whose RRULE no EWS recurrence can express is kept as its first instance, as
    [MS-OXCICAL] 2.1.3.2.2 lets an implementation fail to map it: the meeting's body and the
    log say so, rather than dropping the rest silently."""
    if meeting.unmapped_rule is None:
        return body
    log.warning("meeting %s for %s repeats by %s, which no EWS recurrence expresses: kept as its first instance",
                meeting.uid, mailbox.address, meeting.unmapped_rule)
    note = (f"This meeting repeats ({meeting.unmapped_rule}), which this server cannot keep as a series: "
            "only its first occurrence is in the calendar.")
    if body is not None and body.body_type == "HTML":  # the note opens the body
        at = _BODY_TAG.search(body.text)
        cut = at.end() if at else 0
        return Body("HTML", f"{body.text[:cut]}<p>{html.escape(note)}</p>{body.text[cut:]}")
    return Body("Text", f"{note}\n\n{body.text}" if body is not None and body.text else note)


def _occurrence(existing: Item | None, meeting: Meeting) -> Item | None:
    """The occurrence of the mailbox's series that a message with a RECURRENCE-ID is about (also
    one deleted here: the message is still about it, not about the series)."""
    if existing is None or meeting.recurrence_id is None or not existing.props.get("Recurrence"):
        return None
    return calendar.occurrence_at(existing, meeting.recurrence_id, deleted=True)


def _with_exceptions(store: Store, mailbox: Mailbox, series: Item, meeting: Meeting) -> None:
    """A series request's exceptions (VEVENTs with a RECURRENCE-ID) applied to its occurrences."""
    for exception in meeting.exceptions:
        master = store.items.get(mailbox, series.id, body=False, attachments=False)
        occurrence = _occurrence(master, exception)
        if occurrence is not None:
            _request_occurrence(store, mailbox, master, occurrence, exception, {}, None)


def _request_occurrence(store: Store, mailbox: Mailbox, series: Item, occurrence: Item, meeting: Meeting,
                        props: dict[str, Any], body: Body | None) -> Item:
    """The organizer changed one occurrence: it becomes an exception of the attendee's series; a
    new time, or an occurrence the attendee had deleted (it is back), asks for a new response to
    that occurrence. Returns the occurrence as it now is."""
    props.update(CalendarItemType="Exception", _AssociatedCalendarItem=occurrence.id)
    if int(occurrence.props.get("AppointmentSequenceNumber") or 0) > meeting.sequence:
        props.update(MeetingRequestType="Outdated", IsOutOfDate=True,
                     MyResponseType=occurrence.props.get("MyResponseType", "NoResponseReceived"))
        return occurrence
    shared = meeting_props(meeting)
    changed = {k: v for k, v in shared.items() if k not in ("UID", "Organizer", "IsAllDayEvent", "Recurrence")}
    changed.update(Subject=meeting.subject, IsCancelled=False)
    moved = (occurrence.props["Start"], occurrence.props["End"]) != (shared["Start"], shared["End"])
    if moved or calendar.is_deleted(series, occurrence):
        changed.update(LegacyFreeBusyStatus="Tentative", MyResponseType="NoResponseReceived")
    props["MeetingRequestType"] = "FullUpdate" if moved else "InformationalUpdate"
    props["MyResponseType"] = changed.get("MyResponseType") or occurrence.props.get("MyResponseType",
                                                                                     "NoResponseReceived")
    return calendar.record(store, mailbox, occurrence, ItemChanges(set_props=changed, body=body))
