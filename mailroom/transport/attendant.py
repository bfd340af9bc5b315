"""The calendar attendant: what Exchange does with a meeting message as it is delivered, whoever
sent it (a local mailbox through the queue, or another server over SMTP).

A request is stored as IPM.Schedule.Meeting.Request and puts a tentative meeting in the
attendee's Calendar (a later request for the same UID updates it); a reply
(IPM.Schedule.Meeting.Resp.*) records the attendee's response on the organizer's meeting; a
cancellation (IPM.Schedule.Meeting.Canceled) marks the attendee's meeting cancelled, to be
removed by the attendee (RemoveItem), as Outlook shows it.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from mailroom.content import recipients
from mailroom.content.meetings import Attendee, Meeting, attendee_props, read_attendees
from mailroom.content.recipients import Address
from mailroom.ews import calendar, timezones
from mailroom.store import Store
from mailroom.store.model import Body, Item, ItemChanges, Mailbox, NewItem, utcnow
from mailroom.store.query import Compare, Prop

from . import resource_booking

_TEXT = "%Y-%m-%dT%H:%M:%SZ"
_REPLY_CLASS = {"Accept": "IPM.Schedule.Meeting.Resp.Pos", "Tentative": "IPM.Schedule.Meeting.Resp.Tent",
                "Decline": "IPM.Schedule.Meeting.Resp.Neg"}
STATE_MEETING, STATE_RECEIVED, STATE_CANCELLED = 1, 2, 4  # AppointmentState flags


def calendar_item(store: Store, mailbox: Mailbox, uid: str) -> Item | None:
    """The meeting with this UID in the mailbox's Calendar, if there is one."""
    folder = store.folders.distinguished(mailbox, "calendar")
    found, _ = store.items.find(mailbox, folder.id, where=Compare(Prop("UID"), "eq", uid))
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


def process(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None) -> None:
    """Complete the delivered message's ``props`` as the meeting message it is, and bring the
    mailbox's Calendar in step with it."""
    handler = {"REQUEST": _request, "REPLY": _reply, "CANCEL": _cancel}[meeting.method]
    props.update(UID=meeting.uid, DateTimeStamp=(meeting.stamp or meeting.start).strftime(_TEXT),
                 HasBeenProcessed=True, IsDelegated=False, IsOutOfDate=False)
    if meeting.recurrence_id is not None:
        props["RecurrenceId"] = meeting.recurrence_id.strftime(_TEXT)
    handler(store, mailbox, meeting, props, body)


def _is_me(mailbox: Mailbox, address: Address | None) -> bool:
    return bool(address and address.email and address.email.lower() in (mailbox.address, *mailbox.aliases))


def _request(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None) -> None:
    shared = meeting_props(meeting)
    props.update(shared, ItemClass="IPM.Schedule.Meeting.Request", IntendedFreeBusyStatus="Busy",
                 LegacyFreeBusyStatus="Tentative", IsMeeting=True, MeetingRequestWasSent=False, IsCancelled=False,
                 IsOrganizer=_is_me(mailbox, meeting.organizer), ResponseType="NoResponseReceived",
                 MyResponseType="NoResponseReceived", AppointmentState=STATE_MEETING | STATE_RECEIVED,
                 CalendarItemType="RecurringMaster" if meeting.recurrence else "Single")
    if props["IsOrganizer"] or not resource_booking.places(store, mailbox):
        return  # the organizer's own copy (its calendar already holds the meeting), or left to the owner
    existing = calendar_item(store, mailbox, meeting.uid)
    if existing is None:
        props["MeetingRequestType"] = "NewMeetingRequest"
        item = _tentative(store, mailbox, meeting, shared, body)
    elif int(existing.props.get("AppointmentSequenceNumber") or 0) > meeting.sequence:
        props.update(MeetingRequestType="Outdated", IsOutOfDate=True)
        item = existing
    else:
        moved = (existing.props.get("Start"), existing.props.get("End")) != (shared["Start"], shared["End"])
        props["MeetingRequestType"] = "FullUpdate" if moved else "InformationalUpdate"
        item = _update_tentative(store, mailbox, existing, meeting, shared, body, reset=moved)
    props["MyResponseType"] = item.props.get("MyResponseType", "NoResponseReceived")
    props["_AssociatedCalendarItem"] = item.id
    resource_booking.decide(store, mailbox, meeting, item, props)


def _calendar_props(mailbox: Mailbox, meeting: Meeting, shared: dict[str, Any], creating: bool) -> dict[str, Any]:
    props = {"ItemClass": "IPM.Appointment", "Subject": meeting.subject, **shared, "IsMeeting": True,
             "MeetingRequestWasSent": False, "IsCancelled": False, "IsResponseRequested": True,
             "AppointmentState": STATE_MEETING | STATE_RECEIVED}
    zone = zone_id(meeting)
    calendar.complete(props, mailbox, creating, zone, zone, zone)
    return props


def _tentative(store: Store, mailbox: Mailbox, meeting: Meeting, shared: dict[str, Any], body: Body | None) -> Item:
    """The tentative meeting the attendant puts in the Calendar until the attendee responds."""
    props = _calendar_props(mailbox, meeting, shared, creating=True)
    props.update(LegacyFreeBusyStatus="Tentative", MyResponseType="NoResponseReceived", IsRead=True,
                 DateTimeReceived=utcnow())
    folder = store.folders.distinguished(mailbox, "calendar")
    return store.items.create(mailbox, folder.id, NewItem(props=props, body=body))


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
                          delete_props=[k for k in existing.props if k not in props], body=body)
    return store.items.update(mailbox, existing.id, changes)


def _reply(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None) -> None:
    responder = meeting.attendees[0] if meeting.attendees else None
    response = responder.response if responder else "NoResponseReceived"
    props.update({k: v for k, v in meeting_props(meeting).items() if k in ("Start", "End", "Location", "UID")},
                 ItemClass=_REPLY_CLASS.get(response, "IPM.Schedule.Meeting.Resp.Tent"),
                 ResponseType=response if response in _REPLY_CLASS else "Unknown", IsOrganizer=True)
    existing = calendar_item(store, mailbox, meeting.uid)
    if existing is None or responder is None:
        return
    props["_AssociatedCalendarItem"] = existing.id
    if existing.props.get("Recurrence"):
        props["Recurrence"] = existing.props["Recurrence"]
    attendees = read_attendees(existing.props)
    key = (responder.address.email or "").lower()
    if not any((a.address.email or "").lower() == key for a in attendees):
        attendees.append(Attendee(responder.address, "OptionalAttendees"))  # someone the meeting was forwarded to
    for attendee in attendees:
        if (attendee.address.email or "").lower() == key:
            attendee.response, attendee.responded = props["ResponseType"], utcnow()
    roles = attendee_props(attendees)
    store.items.update(mailbox, existing.id, ItemChanges(
        set_props={k: v for k, v in roles.items() if v}, keep_mime=True,
        delete_props=[k for k, v in roles.items() if not v and k in existing.props]))


def _cancel(store: Store, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None) -> None:
    props.update(meeting_props(meeting), ItemClass="IPM.Schedule.Meeting.Canceled", ResponseType="NoResponseReceived",
                 IsOrganizer=_is_me(mailbox, meeting.organizer))
    existing = calendar_item(store, mailbox, meeting.uid)
    if existing is None or props["IsOrganizer"]:
        return
    props["_AssociatedCalendarItem"] = existing.id
    subject = existing.props.get("Subject") or ""
    state = int(existing.props.get("AppointmentState") or STATE_MEETING) | STATE_CANCELLED
    store.items.update(mailbox, existing.id, ItemChanges(set_props={
        "IsCancelled": True, "AppointmentState": state, "LegacyFreeBusyStatus": "Free",
        "Subject": subject if subject.startswith("Canceled: ") else f"Canceled: {subject}"}))
    resource_booking.cancelled(store, mailbox, existing, props)
