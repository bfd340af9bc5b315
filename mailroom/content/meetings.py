"""Meeting messages as iCalendar (RFC 5545/5546, the icalendar library): a meeting's properties
to a text/calendar part (METHOD REQUEST, REPLY, CANCEL or COUNTER) inside the MIME message, and back.

This is what goes over SMTP, to local and external attendees alike; the calendar attendant
(mailroom/transport/attendant.py) reads it on delivery.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from email.message import Message
from typing import Any

import icalendar
from lxml import etree

from mailroom.store.model import Body

from . import icalrecur, mime, recipients
from .recipients import Address, T

METHODS = ("REQUEST", "REPLY", "CANCEL", "COUNTER")  # COUNTER: a reply proposing a new time
_PRODID = "-//mailroom//Meetings//EN"
_ROLES = {"RequiredAttendees": "REQ-PARTICIPANT", "OptionalAttendees": "OPT-PARTICIPANT",
          "Resources": "NON-PARTICIPANT"}
# EWS ResponseType <-> iCalendar PARTSTAT
_PARTSTAT = {"Accept": "ACCEPTED", "Tentative": "TENTATIVE", "Decline": "DECLINED"}
_RESPONSE = {v: k for k, v in _PARTSTAT.items()}
# A meeting response (EWS ResponseType) -> the verb its subject opens with and its item class.
RESPONSES = {"Accept": ("Accepted", "IPM.Schedule.Meeting.Resp.Pos"),
             "Tentative": ("Tentative", "IPM.Schedule.Meeting.Resp.Tent"),
             "Decline": ("Declined", "IPM.Schedule.Meeting.Resp.Neg")}
_CALENDAR = re.compile(rb"text\s*/\s*calendar", re.IGNORECASE)  # in the Content-Type of a part that is one
_MAX_CALENDAR = 1 << 20  # a text/calendar part larger than this is not read as a meeting


@dataclass
class Attendee:
    address: Address
    role: str = "RequiredAttendees"  # RequiredAttendees, OptionalAttendees or Resources
    response: str = "Unknown"  # an EWS ResponseType
    responded: str | None = None  # LastResponseTime
    proposed: tuple[str, str] | None = None  # ProposedStart, ProposedEnd (UTC text) of a new time proposed
    sent_by: str | None = None  # the address of a delegate answering for the attendee (SENT-BY)

    @property
    def key(self) -> str:
        """The address in lower case: what tells attendees apart."""
        return (self.address.email or "").lower()


@dataclass
class Meeting:
    """One VEVENT of a meeting message, in EWS terms (times in UTC)."""

    method: str
    uid: str
    start: datetime
    end: datetime
    sequence: int = 0
    subject: str = ""
    location: str | None = None
    all_day: bool = False
    organizer: Address | None = None
    attendees: list[Attendee] = field(default_factory=list)
    zone: tzinfo = UTC
    recurrence: str | None = None  # the EWS Recurrence element, serialised
    recurrence_id: datetime | None = None
    stamp: datetime | None = None
    excluded: list[datetime] = field(default_factory=list)  # a series's deleted occurrences (EXDATE), UTC
    exceptions: list[Meeting] = field(default_factory=list)  # a series's changed occurrences (their own VEVENTs)
    unmapped_rule: str | None = None  # an RRULE no EWS recurrence can express (the meeting is its first instance)


# -- attendees as stored (NonEmptyArrayOfAttendeesType) -----------------------------------------
def _t(name: str) -> str:
    return f"{{{T}}}{name}"


def read_attendees(props: dict[str, Any]) -> list[Attendee]:
    """Every attendee of a calendar item, with its role and the response recorded for it."""
    found = []
    for role in _ROLES:
        value = props.get(role)
        if not value:
            continue
        for node in etree.fromstring(value.encode()).iter(_t("Attendee")):
            address = recipients.parse(etree.tostring(node.find(_t("Mailbox")), encoding="unicode"))
            if address:
                proposed = (node.findtext(_t("ProposedStart")), node.findtext(_t("ProposedEnd")))
                found.append(Attendee(address[0], role, node.findtext(_t("ResponseType")) or "Unknown",
                                      node.findtext(_t("LastResponseTime")),
                                      proposed if proposed[0] and proposed[1] else None))
    return found


def attendee_props(attendees: list[Attendee]) -> dict[str, str | None]:
    """RequiredAttendees / OptionalAttendees / Resources for these attendees (None: the role has none)."""
    props: dict[str, str | None] = {}
    for role in _ROLES:
        mine = [a for a in attendees if a.role == role]
        if not mine:
            props[role] = None
            continue
        root = etree.Element(_t(role), nsmap={"t": T})
        for attendee in mine:
            node = etree.SubElement(root, _t("Attendee"))
            node.append(etree.fromstring(recipients.build("Mailbox", [attendee.address], single=True).encode())[0])
            etree.SubElement(node, _t("ResponseType")).text = attendee.response
            if attendee.responded:
                etree.SubElement(node, _t("LastResponseTime")).text = attendee.responded
            if attendee.proposed:
                etree.SubElement(node, _t("ProposedStart")).text = attendee.proposed[0]
                etree.SubElement(node, _t("ProposedEnd")).text = attendee.proposed[1]
        props[role] = etree.tostring(root, encoding="unicode")
    return props


def response_type(partstat: str | None) -> str:
    return _RESPONSE.get((partstat or "").upper(), "NoResponseReceived")


# -- writing ------------------------------------------------------------------------------------
def _address(who: Address, **params: str) -> icalendar.vCalAddress:
    value = icalendar.vCalAddress(f"mailto:{who.email}")
    if who.name:
        value.params["CN"] = who.name
    value.params.update(params)
    return value


def to_ical(meeting: Meeting) -> bytes:
    """The VCALENDAR of a meeting message; VTIMEZONE for the meeting's zone, RRULE for a series and
    a VEVENT with its RECURRENCE-ID for each of the series's exceptions ([MS-OXCICAL] 2.1.3.1.1)."""
    cal = icalendar.Calendar()
    cal.add("prodid", _PRODID)
    cal.add("version", "2.0")
    cal.add("method", meeting.method)
    for one in (meeting, *meeting.exceptions):
        cal.add_component(_event(one))
    cal.add_missing_timezones()
    return cal.to_ical()


def _event(meeting: Meeting) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", meeting.uid)
    event.add("sequence", meeting.sequence)
    event.add("dtstamp", meeting.stamp or datetime.now(UTC))
    start, end = meeting.start.astimezone(meeting.zone), meeting.end.astimezone(meeting.zone)
    if meeting.all_day:
        event.add("dtstart", start.date())
        event.add("dtend", end.date())
    else:
        event.add("dtstart", start)
        event.add("dtend", end)
    if meeting.recurrence and meeting.recurrence_id is None:
        event.add("rrule", icalrecur.to_rrule(meeting.recurrence, meeting.zone, start.timetz().replace(tzinfo=None)))
        for excluded in meeting.excluded:
            event.add("exdate", excluded.astimezone(meeting.zone))
    if meeting.recurrence_id is not None:
        event.add("recurrence-id", meeting.recurrence_id.astimezone(meeting.zone))
    event.add("summary", meeting.subject)
    if meeting.location:
        event.add("location", meeting.location)
    event.add("status", "CANCELLED" if meeting.method == "CANCEL" else "CONFIRMED")
    if meeting.organizer is not None and meeting.organizer.email:
        event.add("organizer", _address(meeting.organizer))
    for attendee in meeting.attendees:
        if attendee.address.email:
            partstat = _PARTSTAT.get(attendee.response, "NEEDS-ACTION")
            params = {"ROLE": _ROLES[attendee.role], "PARTSTAT": partstat}
            if meeting.method == "REQUEST":
                params["RSVP"] = "TRUE"
            if attendee.sent_by:  # RFC 5545 3.2.18: the attendee stays the principal
                params["SENT-BY"] = f"mailto:{attendee.sent_by}"
            event.add("attendee", _address(attendee.address, **params))
    return event


def build_message(props: dict[str, Any], body: Body | None, meeting: Meeting) -> bytes:
    """The MIME of a meeting message, as Exchange sends one: the body's alternatives (text, and
    HTML when the body is) and the text/calendar with its METHOD as the last alternative."""
    msg = email.message_from_bytes(mime.build_message(props, body, []), policy=email.policy.SMTP)
    if msg.get_content_maintype() != "multipart":
        msg.make_alternative()
    msg.add_alternative(to_ical(meeting).decode(), subtype="calendar", params={"method": meeting.method},
                        cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]
    return msg.as_bytes()


# -- reading ------------------------------------------------------------------------------------
def calendar_part(raw: bytes, msg: Message | None = None) -> bytes | None:
    """The text/calendar part of a message (the message itself when it is one), if it has one;
    ``msg`` is the message already parsed, if it was."""
    # most mail: no part to look for (the plain substring test first: far cheaper than the pattern)
    if b"calendar" not in raw.lower() or not _CALENDAR.search(raw):
        return None
    try:
        if msg is None:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_type() == "text/calendar" and part.get_content_disposition() != "attachment":
                data = part.get_payload(decode=True)
                return data if isinstance(data, bytes) and len(data) <= _MAX_CALENDAR else None
    except (ValueError, LookupError, TypeError, IndexError, AttributeError):
        return None
    return None


def read(raw: bytes, msg: Message | None = None) -> Meeting | None:
    """The meeting a message carries: its text/calendar part's METHOD and VEVENT (a series's with
    the VEVENTs of its exceptions, those with a RECURRENCE-ID); None for an ordinary message or a
    calendar that cannot be read (the message is then kept as mail). ``msg`` is the message
    already parsed, if it was."""
    data = calendar_part(raw, msg)
    if data is None:
        return None
    try:
        cal = icalendar.Calendar.from_ical(data)
        method = str(cal.get("method") or "").upper()
        events = cal.walk("VEVENT")
        if method not in METHODS or not events:
            return None
        main = next((e for e in events if "recurrence-id" not in e), events[0])
        meeting = _meeting(method, main)
        if meeting.recurrence is not None:
            meeting.exceptions = [_meeting(method, e) for e in events
                                  if "recurrence-id" in e and str(e.get("uid") or "") == meeting.uid]
        return meeting
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None


def _moment(value: Any) -> tuple[datetime, bool]:
    """A DTSTART/DTEND value in UTC, and whether it was a date (an all-day event)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC), False
    return datetime.combine(value, time(), tzinfo=UTC), True


def _who(value: Any) -> Address | None:
    if value is None:
        return None
    text = str(value)
    email_address = text[7:] if text.lower().startswith("mailto:") else text
    return Address(value.params.get("CN") or None, email_address or None) if email_address else None


def _meeting(method: str, event: icalendar.Event) -> Meeting:
    start_value = event.decoded("dtstart")
    start, all_day = _moment(start_value)
    if "dtend" in event:
        end, _ = _moment(event.decoded("dtend"))
    elif "duration" in event:
        end = start + event.decoded("duration")
    else:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    zone = start_value.tzinfo if isinstance(start_value, datetime) and start_value.tzinfo else UTC
    attendees = []
    found = event.get("attendee") or []
    for value in found if isinstance(found, list) else [found]:
        address = _who(value)
        if address is not None:
            role = {v: k for k, v in _ROLES.items()}.get(str(value.params.get("ROLE", "")).upper(),
                                                          "RequiredAttendees")
            attendees.append(Attendee(address, role, response_type(value.params.get("PARTSTAT"))))
    recurrence, unmapped = None, None
    if "rrule" in event:
        recurrence = icalrecur.from_rrule(dict(event["rrule"]), start.astimezone(zone))
        unmapped = None if recurrence else event["rrule"].to_ical().decode()
    recurrence_id = None
    if "recurrence-id" in event:
        recurrence_id, _ = _moment(event.decoded("recurrence-id"))
    stamp = _moment(event.decoded("dtstamp"))[0] if "dtstamp" in event else None
    return Meeting(method=method, uid=str(event.get("uid") or ""), start=start, end=end,
                   sequence=int(event.get("sequence") or 0), subject=str(event.get("summary") or ""),
                   location=str(event["location"]) if "location" in event else None, all_day=all_day,
                   organizer=_who(event.get("organizer")), attendees=attendees, zone=zone, recurrence=recurrence,
                   recurrence_id=recurrence_id, stamp=stamp, unmapped_rule=unmapped,
                   excluded=_excluded(event) if recurrence else [])


def _excluded(event: icalendar.Event) -> list[datetime]:
    """The EXDATE values of a series (one property or several, each with one date or more), UTC."""
    found = event.get("exdate") or []
    return [_moment(value.dt)[0] for prop in (found if isinstance(found, list) else [found]) for value in prop.dts]
