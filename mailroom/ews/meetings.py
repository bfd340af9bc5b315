"""Meetings from the EWS side: the organizer's invitations, updates and cancellations (CreateItem /
UpdateItem / DeleteItem with SendMeetingInvitations..., CancelCalendarItem) and the attendee's
responses (AcceptItem, TentativelyAcceptItem, DeclineItem, RemoveItem).

Every meeting message is MIME with a text/calendar part (mailroom/content/meetings.py) submitted
to the transport like any mail, so local attendees and other servers get the same iCalendar;
the calendar attendant (mailroom/transport/attendant.py) acts on it where it is delivered.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import meetings, recipients
from mailroom.content.meetings import Attendee, Meeting, read_attendees
from mailroom.content.recipients import Address
from mailroom.store import errors as store_errors
from mailroom.store.model import Attachment, Body, Item, ItemChanges, Mailbox, NewItem, utcnow
from mailroom.transport import delegate_copies
from mailroom.transport.attendant import STATE_MEETING, calendar_item, meeting_props

from . import calendar
from .dates import parse_utc, to_utc_text
from .errors import EWSError, SOAPFault
from .folders import trash_id
from .items import parse_body
from .sending import saved_copy_folder, send_new
from .xml import local, sub, t

if TYPE_CHECKING:
    from .service import Operation

_RESPONSE_OF = {"AcceptItem": "Accept", "TentativelyAcceptItem": "Tentative", "DeclineItem": "Decline"}
HANDLED = frozenset({*_RESPONSE_OF, "CancelCalendarItem", "RemoveItem"})
_SAVING = ("SendToAllAndSaveCopy", "SendToChangedAndSaveCopy")
_ADDRESSED = (("ToRecipients", ("RequiredAttendees", "Resources")), ("CcRecipients", ("OptionalAttendees",)))
_TO_CHANGED = ("SendOnlyToChanged", "SendToChangedAndSaveCopy")
# The elements a meeting response object may carry (MeetingRegistrationResponseObjectType and its bases).
_ALLOWED = frozenset({"ItemClass", "Sensitivity", "Body", "Attachments", "InternetMessageHeaders", "Sender",
                      "ToRecipients", "CcRecipients", "BccRecipients", "IsReadReceiptRequested",
                      "IsDeliveryReceiptRequested", "Subject", "From", "ReferenceItemId", "NewBodyContent",
                      "ReceivedBy", "ReceivedRepresenting", "ProposedStart", "ProposedEnd"})


def is_organizer(item: Item) -> bool:
    return is_organizer_props(item.props)


def is_organizer_props(props: dict[str, Any]) -> bool:
    return props.get("MyResponseType", "Organizer") == "Organizer"


def _meeting(item: Item, method: str, attendees: list[Attendee] | None = None) -> Meeting:
    p = item.props
    organizer = recipients.parse(p.get("Organizer"))
    return Meeting(method=method, uid=p["UID"], start=parse_utc(p["Start"]), end=parse_utc(p["End"]),
                   sequence=int(p.get("AppointmentSequenceNumber") or 0), subject=p.get("Subject") or "",
                   location=p.get("Location"), all_day=bool(p.get("IsAllDayEvent")),
                   organizer=organizer[0] if organizer else None,
                   attendees=read_attendees(p) if attendees is None else attendees, zone=calendar.zone(p),
                   recurrence=p.get("Recurrence") if method != "REPLY" else None, stamp=datetime.now(UTC),
                   recurrence_id=parse_utc(p["OriginalStart"]) if calendar.is_occurrence(item) else None,
                   excluded=[parse_utc(s) for s in calendar.deleted_starts(item)] if p.get("Recurrence") else [],
                   exceptions=[_meeting(changed, method) for changed in calendar.modified(item)]
                   if p.get("Recurrence") and method == "REQUEST" else [])


def _compose(meeting: Meeting, props: dict[str, Any], body: Body | None, _attachments: list[Attachment]) -> bytes:
    return meetings.build_message(props, body, meeting)


def _send(op: Operation, mailbox: Mailbox, meeting: Meeting, props: dict[str, Any], body: Body | None,
          save_copy: bool, saved_el: etree._Element | None) -> None:
    """Submit one meeting message (``props`` name its recipients); a copy in Sent Items (or
    SavedItemFolderId) when asked."""
    saved = (mailbox, saved_copy_folder(op, saved_el, mailbox)) if save_copy else None
    props.update({k: v for k, v in meeting_props(meeting).items() if k not in props})
    send_new(op.ctx, NewItem(props=props, body=body), saved, compose=partial(_compose, meeting))


def _to(attendees: list[Attendee]) -> dict[str, str]:
    """Required attendees and resources in To, optional ones in Cc, as Outlook addresses a request."""
    props = {}
    for element, roles in _ADDRESSED:
        found = [a.address for a in attendees if a.role in roles and a.address.email]
        if found:
            props[element] = recipients.build(element, found)
    return props


# -- the organizer ------------------------------------------------------------------------------
def prepare(props: dict[str, Any], mode: str | None, previous: Item | None) -> bool:
    """Stamp a calendar item about to be saved as a sent meeting; whether invitations go out."""
    sending = bool(props.get("IsMeeting")) and mode not in (None, "SendToNone") and is_organizer_props(props)
    if sending:
        sequence = -1 if previous is None or not previous.props.get("MeetingRequestWasSent") else int(
            previous.props.get("AppointmentSequenceNumber") or 0)
        props.update(MeetingRequestWasSent=True, AppointmentSequenceNumber=sequence + 1,
                     AppointmentState=STATE_MEETING)
    elif props.get("IsMeeting"):
        props.setdefault("AppointmentState", STATE_MEETING)
    return sending


def invite(op: Operation, mailbox: Mailbox, item: Item, mode: str, previous: Item | None,
           saved_el: etree._Element | None = None) -> None:
    """Send the meeting request (to everyone, or to the attendees an update added) and a
    cancellation to the attendees an update removed."""
    attendees = read_attendees(item.props)
    earlier = read_attendees(previous.props) if previous else []
    before, now = {a.key for a in earlier}, {a.key for a in attendees}
    targets = attendees
    if previous is not None and mode in _TO_CHANGED:
        targets = [a for a in attendees if a.key not in before]
    save_copy = mode in _SAVING
    if targets:
        props = {"ItemClass": "IPM.Schedule.Meeting.Request", "Subject": item.props.get("Subject") or "",
                 **_to(targets)}
        _send(op, mailbox, _meeting(item, "REQUEST", attendees), props, item.body, save_copy, saved_el)
    removed = [a for a in earlier if a.key not in now]
    if removed:
        props = {"ItemClass": "IPM.Schedule.Meeting.Canceled",
                 "Subject": f"Canceled: {item.props.get('Subject') or ''}", **_to(removed)}
        _send(op, mailbox, _meeting(item, "CANCEL", removed), props, None, save_copy, saved_el)


def occurrence_sequence(occurrence: Item, changes: ItemChanges, mode: str | None) -> bool:
    """Stamp a change to one occurrence of a sent meeting with the next sequence number, as the
    organizer's update of that occurrence (sent with its RECURRENCE-ID); whether it goes out."""
    props = occurrence.props
    sending = (bool(props.get("IsMeeting")) and bool(props.get("MeetingRequestWasSent"))
               and mode not in (None, "SendToNone") and is_organizer_props(props))
    if sending:
        changes.set_props["AppointmentSequenceNumber"] = int(props.get("AppointmentSequenceNumber") or 0) + 1
    return sending


def cancel_all(op: Operation, mailbox: Mailbox, item: Item, mode: str | None, body: Body | None = None,
               saved_el: etree._Element | None = None) -> None:
    """Tell every attendee the meeting is cancelled (DeleteItem / CancelCalendarItem by the organizer)."""
    attendees = read_attendees(item.props)
    if mode in (None, "SendToNone") or not attendees or not item.props.get("MeetingRequestWasSent"):
        return
    props = {"ItemClass": "IPM.Schedule.Meeting.Canceled", "Subject": f"Canceled: {item.props.get('Subject') or ''}",
             "Importance": "High", **_to(attendees)}
    meeting = _meeting(item, "CANCEL")
    meeting.sequence += 1
    _send(op, mailbox, meeting, props, body, mode in _SAVING, saved_el)


# -- response objects ---------------------------------------------------------------------------
def _read(node: etree._Element) -> tuple[etree._Element, Body | None]:
    """The ReferenceItemId and the body a meeting response object carries."""
    reference, body = None, None
    for child in node:
        name = local(child.tag)
        if name not in _ALLOWED:
            raise SOAPFault("ErrorSchemaValidation", f"{name} is not a property of {local(node.tag)}.")
        if name == "ReferenceItemId":
            reference = child
        elif name in ("Body", "NewBodyContent"):
            body = parse_body(child)
    if reference is None:
        raise EWSError("ErrorMissingInformationReferenceItemId", "The response object needs a ReferenceItemId.")
    return reference, body


def _meeting_of(op: Operation, reference: etree._Element, need: Access) -> tuple[Mailbox, Item, Item | None, Mailbox]:
    """The calendar item a response object refers to (through its meeting message, if it names
    one), the mailbox it is in, that message and the mailbox holding it: a delegate's copy of a
    meeting message refers to its principal's meeting, which the delegate may ``need`` by its
    rights on the principal's Calendar."""
    holder, item = op.item_from(reference, need)
    if calendar.is_calendar(item.props):
        return holder, item, None, holder
    if not item.item_class.startswith("IPM.Schedule.Meeting") or not item.props.get("UID"):
        raise EWSError("ErrorInvalidReferenceItem", "The item is neither a meeting nor a meeting message.")
    found, mailbox = None, delegate_copies.principal_of(op.ctx.store, holder, item.props) or holder
    row = item.props.get("_AssociatedCalendarItem")
    if row is not None:
        with contextlib.suppress(store_errors.NotFound):
            found = op.ctx.store.items.get(mailbox, row)
    found = found or calendar_item(op.ctx.store, mailbox, item.props["UID"])
    if found is not None and item.props.get("RecurrenceId") and found.props.get("Recurrence"):
        found = calendar.occurrence_at(found, parse_utc(item.props["RecurrenceId"]))  # one occurrence's message
    if found is None:
        raise EWSError("ErrorItemNotFound", "The meeting this message is about is not in the calendar.")
    if mailbox is not holder:
        op.authorize(mailbox, found.folder_id, need, found)
    return mailbox, found, item, holder


def _id_element(parent: etree._Element, mailbox: Mailbox, item: Item) -> None:
    from .items import item_id_attrs

    sub(sub(parent, t("CalendarItem")), t("ItemId"), **item_id_attrs(mailbox, item))


def respond(op: Operation, node: etree._Element, disposition: str, saved_el: etree._Element | None,
            items: etree._Element) -> None:
    """AcceptItem / TentativelyAcceptItem / DeclineItem: record the response on the attendee's
    meeting and, unless SaveOnly, send the organizer a METHOD:REPLY (METHOD:COUNTER with a new
    time proposed). A decline moves the meeting (and the request) to Deleted Items, as Exchange
    does."""
    kind = local(node.tag)
    response = _RESPONSE_OF[kind]
    verb, item_class = meetings.RESPONSES[response]
    reference, body = _read(node)
    proposal = _proposal(op, node, response)
    mailbox, item, message, holder = _meeting_of(op, reference, Access.EDIT)
    if is_organizer(item):
        raise EWSError(f"ErrorCalendarIsOrganizerFor{response}", "The organizer cannot respond to the meeting.")
    if item.props.get("IsCancelled"):
        raise EWSError(f"ErrorCalendarIsCancelledFor{response}", "The meeting was cancelled.")
    store = op.ctx.store
    if disposition != "SaveOnly":
        me = Address(mailbox.display_name, mailbox.address)
        organizer = recipients.parse(item.props.get("Organizer"))
        if not organizer or not organizer[0].email:
            raise EWSError("ErrorInvalidRecipients", "The meeting has no organizer to respond to.")
        props = {"ItemClass": item_class, "Subject": f"{verb}: {item.props.get('Subject') or ''}",
                 "ToRecipients": recipients.build("ToRecipients", organizer[:1]),
                 "From": recipients.build("From", [me], single=True)}  # a delegate's: on behalf of the principal
        mine = next((a for a in read_attendees(item.props) if a.key == mailbox.address),
                    Attendee(me))
        sent_by = holder.address if holder.id != mailbox.id else None  # a delegate answering for its principal
        meeting = _meeting(item, "REPLY", [Attendee(me, mine.role, response, sent_by=sent_by)])
        if proposal is not None:  # a new time proposed: METHOD:COUNTER whose DTSTART/DTEND are the proposal
            meeting.method, (meeting.start, meeting.end) = "COUNTER", proposal
            props["Subject"] = f"New Time Proposed: {item.props.get('Subject') or ''}"
        _send(op, holder, meeting, props, body, disposition == "SendAndSaveCopy", saved_el)
    trash = trash_id(store, mailbox, "MoveToDeletedItems")
    if message is not None:  # the request is done with, as in Outlook
        store.items.move_or_delete(holder, message.id, trash_id(store, holder, "MoveToDeletedItems"))
    changes = {"MyResponseType": response, "AppointmentReplyTime": utcnow(),
               "LegacyFreeBusyStatus": "Tentative" if response == "Tentative" else "Busy"}
    updated = calendar.record(store, mailbox, item, ItemChanges(set_props=changes))
    if response == "Decline":
        calendar.discard(store, mailbox, updated, trash)
        return
    _id_element(items, mailbox, updated)


def _proposal(op: Operation, node: etree._Element, response: str) -> tuple[datetime, datetime] | None:
    """The new time a TentativelyAcceptItem or DeclineItem proposes (Exchange 2013 and later), if any."""
    given = [node.findtext(t(name)) for name in ("ProposedStart", "ProposedEnd")]
    if not any(given):
        return None
    if not op.ctx.at_least("Exchange2013"):
        raise SOAPFault("ErrorSchemaValidation", "ProposedStart and ProposedEnd came with Exchange 2013.")
    if response == "Accept":
        raise EWSError("ErrorInvalidOperation", "A new time is proposed with a tentative acceptance or a decline.")
    if not all(given):
        raise EWSError("ErrorInvalidPropertyRequest", "A new time needs ProposedStart and ProposedEnd.")
    start, end = (parse_utc(to_utc_text(text or "", op.ctx.tz)) for text in given)
    if end < start:
        raise EWSError("ErrorCalendarEndDateIsEarlierThanStartDate", "ProposedEnd is earlier than ProposedStart.")
    return start, end


def cancel(op: Operation, node: etree._Element, disposition: str, saved_el: etree._Element | None) -> None:
    """CancelCalendarItem: the organizer cancels the meeting (or one occurrence of it) for everyone;
    it leaves the calendar."""
    reference, body = _read(node)
    mailbox, item = op.item_from(reference, Access.DELETE)
    if not calendar.is_calendar(item.props) or not is_organizer(item):
        raise EWSError("ErrorCalendarIsNotOrganizer", "Only the organizer's meeting can be cancelled.")
    mode = {"SendOnly": "SendOnlyToAll", "SendAndSaveCopy": "SendToAllAndSaveCopy"}.get(disposition, "SendToNone")
    cancel_all(op, mailbox, item, mode, body, saved_el)  # for an occurrence, with its RECURRENCE-ID
    store = op.ctx.store
    calendar.discard(store, mailbox, item, trash_id(store, mailbox, "MoveToDeletedItems"))


def remove(op: Operation, node: etree._Element) -> None:
    """RemoveItem: the attendee takes a cancelled meeting out of the calendar (with the cancellation)."""
    reference, _ = _read(node)
    mailbox, item, message, holder = _meeting_of(op, reference, Access.DELETE)
    if message is None or not message.item_class.startswith("IPM.Schedule.Meeting.Canceled"):
        raise EWSError("ErrorInvalidReferenceItem", "RemoveItem refers to a meeting cancellation.")
    if is_organizer(item):
        raise EWSError("ErrorCalendarIsOrganizerForRemove", "The organizer cancels the meeting instead.")
    store = op.ctx.store
    calendar.discard(store, mailbox, item, trash_id(store, mailbox, "MoveToDeletedItems"))
    store.items.move_or_delete(holder, message.id, trash_id(store, holder, "MoveToDeletedItems"))

