"""Meeting messages of a mailbox with delegates, as Exchange delivers them: each delegate whose
ReceiveCopiesOfMeetingMessages is set gets a copy of every meeting request, response and
cancellation delivered to the principal (IsDelegated, ReceivedRepresenting the principal), and the
principal's DeliverMeetingRequests decides what becomes of the principal's own copy
(Exchange's DeliverMeetingRequestsType):

- DelegatesOnly: moved to the principal's Deleted Items;
- DelegatesAndMe: kept in the Inbox as it is;
- DelegatesAndSendInformationToMe (the default): kept in the Inbox for information only
  (MeetingRequestType PrincipalWantsCopy; no Accept, Tentative or Decline offered);
- NoForward: no copies; the principal's copy stays as it is.

Nothing changes while no delegate receives copies. The principal's Calendar is updated by the
calendar attendant as for any attendee; a delegate answers for the principal through its copy
(mailroom/ews/meetings.py), which needs edit rights on the principal's Calendar."""

from __future__ import annotations

from typing import Any

from mailroom.content import recipients
from mailroom.content.recipients import Address
from mailroom.store import Store
from mailroom.store.model import Delivery, Mailbox, NewItem

_INFORMATION_ONLY = "PrincipalWantsCopy"
_DISPOSAL = {"DelegatesOnly": "deleteditems"}


def route(store: Store, principal: Mailbox, item: NewItem, message_id: str | None) -> tuple[str, list[Delivery]]:
    """The folder the principal's copy of a meeting message goes to (``item.props`` marked
    informational where the setting says so), and the copies for its delegates."""
    props = item.props
    if _organizers_own(props):
        return "inbox", []
    setting, delegates = store.permissions.meeting_copies(principal)
    if setting == "NoForward" or not delegates:
        return "inbox", []
    copies = [Delivery(delegate, NewItem(props=_copy_props(props, principal, delegate), body=item.body, mime=item.mime,
                                         attachments=item.attachments), message_id, key=principal.address)
              for delegate in delegates]
    if setting == "DelegatesAndSendInformationToMe" and props.get("ItemClass", "").startswith(
            "IPM.Schedule.Meeting.Request"):
        props["MeetingRequestType"] = _INFORMATION_ONLY
    return _DISPOSAL.get(setting, "inbox"), copies


def _organizers_own(props: dict[str, Any]) -> bool:
    """A request or cancellation the principal itself organised (its own copy): nobody's to answer."""
    return bool(props.get("IsOrganizer")) and not props.get("ItemClass", "").startswith("IPM.Schedule.Meeting.Resp")


def _copy_props(props: dict[str, Any], principal: Mailbox, delegate: Mailbox) -> dict[str, Any]:
    """The delegate's copy: received by the delegate, representing the principal; the principal's
    calendar item is the principal's, found again by UID when the delegate answers."""
    copied = {k: v for k, v in props.items() if k != "_AssociatedCalendarItem"}
    copied.update(
        IsDelegated=True,
        ReceivedBy=recipients.build("ReceivedBy", [Address(delegate.display_name, delegate.address)], True),
        ReceivedRepresenting=recipients.build("ReceivedRepresenting",
                                              [Address(principal.display_name, principal.address)], True))
    return copied


def principal_of(store: Store, holder: Mailbox, props: dict[str, Any]) -> Mailbox | None:
    """The principal a delegate's copy represents (None for any other message)."""
    if not props.get("IsDelegated"):
        return None
    found = recipients.parse(props.get("ReceivedRepresenting"))
    if not found or not found[0].email:
        return None
    principal = store.directory.mailbox_by_address(found[0].email)
    return principal if principal is not None and principal.id != holder.id else None
