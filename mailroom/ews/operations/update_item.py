"""UpdateItem: set, append to or delete item properties, guarded by the ChangeKey, and send the
updated message when MessageDisposition asks for it ([MS-OXWSCORE] 3.1.4.9)."""

from __future__ import annotations

import base64
import binascii
import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import body as bodies
from mailroom.content import mime
from mailroom.content.properties import derive_properties
from mailroom.store.model import Body, ExtendedValue, Item, ItemChanges, Mailbox, NewItem

from .. import calendar, mapi, meetings, recurrence, tasks
from ..dates import parse_utc
from ..errors import EWSError
from ..extended import PROPERTY_SETS, ExtendedField, parse_property
from ..items import READ_ONLY, convert, element_for_class, parse_body, render_element
from ..paths import FieldPath, IndexedPath, Path, Shape, first_path
from ..schema import ITEM_ELEMENTS, Element, schema
from ..sending import saved_copy_folder, send_existing
from ..service import Operation, choice, expected_change, require
from ..xml import T, local, m, parse_fragment, sub, t

# Stamped by the server (at delivery, sending or creation) though the schema lists them on the item.
_SERVER_SET = frozenset({"DateTimeReceived", "DateTimeSent", "ConversationTopic", "ConversationIndex", "IsDraft",
                         "ReceivedBy", "ReceivedRepresenting", "InternetMessageHeaders", "Attachments"})
# The properties AppendToItemField accepts (the EWS reference lists these).
_APPENDABLE = frozenset({"Body", "ToRecipients", "CcRecipients", "BccRecipients", "ReplyTo", "RequiredAttendees",
                         "OptionalAttendees", "Resources", "Members"})
# Changing only these leaves the stored MIME true (flags and categories are not in the message).
_MIME_NEUTRAL = frozenset({"IsRead", "Categories", "Flag", "ReminderIsSet", "ReminderDueBy",
                           "ReminderMinutesBeforeStart", "ReminderNextTime"})
_MESSAGES = frozenset({"Message", "MeetingMessage", "MeetingRequest", "MeetingResponse", "MeetingCancellation",
                       "SharingMessage"})
_ID_ELEMENTS = frozenset({"ItemId", "OccurrenceItemId", "RecurringMasterItemId"})
_INTERNET_HEADERS = f"set:{PROPERTY_SETS['InternetHeaders']}:"


@dataclass
class _Edit:
    """The changes to one item as they accumulate, so later updates see earlier ones."""

    item: Item
    type_name: str
    changes: ItemChanges

    def value(self, name: str) -> Any:
        if name in self.changes.set_props:
            return self.changes.set_props[name]
        return None if name in self.changes.delete_props else self.item.props.get(name)

    def set(self, name: str, value: Any) -> None:
        if name in self.changes.delete_props:
            self.changes.delete_props.remove(name)
        self.changes.set_props[name] = value

    def delete(self, name: str) -> None:
        self.changes.set_props.pop(name, None)
        if name not in self.changes.delete_props:
            self.changes.delete_props.append(name)

    def body(self) -> Body | None:
        return self.changes.body or (None if self.changes.delete_body else self.item.body)

    def set_body(self, body: Body | None) -> None:
        self.changes.body, self.changes.delete_body = body, body is None

    def set_extended(self, value: ExtendedValue) -> None:
        self.changes.delete_extended = [k for k in self.changes.delete_extended if k != value.key]
        self.changes.set_extended = [v for v in self.changes.set_extended if v.key != value.key] + [value]

    def delete_extended(self, key: str) -> None:
        self.changes.set_extended = [v for v in self.changes.set_extended if v.key != key]
        self.changes.delete_extended.append(key)

    def element(self, name: str, code: str) -> Element:
        """The schema element of a property this item type has; ``code`` when it has none."""
        found = schema().element(self.type_name, name)
        if found is None or name in READ_ONLY or name in _SERVER_SET:
            raise EWSError(code, f"The property {name} cannot be changed on this item.")
        return found


class UpdateItem(Operation):
    name = "UpdateItem"

    def execute(self, request: etree._Element) -> etree._Element:
        self.resolution = choice(request, "ConflictResolution", "ConflictResolutionType", "AutoResolve")
        self.disposition = choice(request, "MessageDisposition", "MessageDispositionType")
        self.invitations = choice(request, "SendMeetingInvitationsOrCancellations", "CalendarItemUpdateOperationType")
        self.saved_el = request.find(m("SavedItemFolderId"))
        root, messages = self.response()
        self.each(messages, list(require(request, m("ItemChanges"))), self._change)
        return root

    def _change(self, change_el: etree._Element, msg: etree._Element) -> None:
        id_el = next((c for c in change_el if local(c.tag) in _ID_ELEMENTS), None)
        if id_el is None:
            raise EWSError("ErrorInvalidOperation", "The change names no item.")
        mailbox, item = self.item_from(id_el, Access.EDIT)
        expected = self._expected(id_el.get("ChangeKey"))
        kind = element_for_class(item.item_class, self.ctx)
        if kind in _MESSAGES and self.disposition is None:
            raise EWSError("ErrorMessageDispositionRequired", "MessageDisposition is required for messages.")
        if kind == "CalendarItem" and self.invitations is None:
            raise EWSError("ErrorSendMeetingInvitationsOrCancellationsRequired",
                           "SendMeetingInvitationsOrCancellations is required for calendar items.")
        sending = kind in _MESSAGES and self.disposition in ("SendOnly", "SendAndSaveCopy")
        keep_copy = sending and self.disposition == "SendAndSaveCopy"
        saved = saved_copy_folder(self, self.saved_el, mailbox) if keep_copy else None
        edit = _Edit(item, ITEM_ELEMENTS[kind], ItemChanges())
        for update in require(change_el, t("Updates")):
            self._apply(edit, update)
        _derive(edit)
        edit.changes.keep_mime = _keeps_mime(edit.changes)
        if kind == "CalendarItem" and calendar.is_occurrence(item):
            updated = self._update_occurrence(mailbox, item, edit.changes, expected)
        else:
            inviting = False
            if kind == "CalendarItem":
                inviting = self._complete_calendar_item(mailbox, edit)
            elif kind == "Task":
                self._complete_task(mailbox, edit)
            updated = self.ctx.store.items.update(mailbox, item.id, edit.changes, expected_change=expected)
            if inviting:
                meetings.invite(self, mailbox, updated, self.invitations or "SendToNone", item)
        items = sub(msg, m("Items"))
        if sending:
            send_existing(self.ctx, mailbox, updated, saved)  # a sent message is not returned, as on Exchange
        else:
            render_element(items, mailbox, updated, Shape(base="IdOnly"), self.ctx)
        sub(sub(msg, m("ConflictResults")), t("Count"), "0")

    def _update_occurrence(self, mailbox: Mailbox, occurrence: Item, changes: ItemChanges,
                           expected: int | None) -> Item:
        """An occurrence changed becomes an exception, kept on its recurring master; the organizer's
        change to a sent meeting goes to its attendees as that occurrence's update."""
        store = self.ctx.store
        master = store.items.get(mailbox, occurrence.id)
        inviting = meetings.occurrence_sequence(occurrence, changes, self.invitations)
        saved = store.items.update(mailbox, master.id, calendar.exception_changes(master, occurrence, changes),
                                   expected_change=expected)
        updated = calendar.occurrence(saved, occurrence.props["_Instance"])
        if inviting:
            meetings.invite(self, mailbox, updated, self.invitations or "SendToNone", occurrence, self.saved_el)
        return updated

    def _complete_calendar_item(self, mailbox: Mailbox, edit: _Edit) -> bool:
        """Recompute what the server keeps in step on a calendar item (zones, span, first occurrence);
        a redefined series loses its exceptions and deleted occurrences, as on Exchange. True when
        the meeting's update is to be sent to its attendees."""
        before = edit.item.props
        props = {k: v for k, v in before.items() if k not in edit.changes.delete_props}
        props.update(edit.changes.set_props)
        calendar.normalise(props, self.ctx, mailbox, creating=False)
        if calendar.series_changes(before, props):
            props.pop("_Exceptions", None)
            props.pop("_Deleted", None)
        inviting = meetings.prepare(props, self.invitations, edit.item)
        edit.changes.set_props = {k: v for k, v in props.items() if before.get(k) != v}
        edit.changes.delete_props = [k for k in before if k not in props]
        return inviting

    def _complete_task(self, mailbox: Mailbox, edit: _Edit) -> None:
        """Status and percent kept in step; completing a recurring task keeps a completed copy of
        this occurrence and moves the task on to its next one, as Exchange does."""
        before = edit.item.props
        props = {k: v for k, v in before.items() if k not in edit.changes.delete_props}
        props.update(edit.changes.set_props)
        tasks.normalise(props, before, self.ctx.tz)
        if props["Status"] == "Completed" != before.get("Status") and props.get("Recurrence"):
            following = self._next_task(props)
            if following is not None:
                done = {k: v for k, v in props.items() if k != "Recurrence"}
                done["IsRecurring"] = False
                self.ctx.store.items.create(mailbox, edit.item.folder_id, NewItem(props=done, body=edit.body()))
                props = tasks.shift(props, following)
        edit.changes.set_props = {k: v for k, v in props.items() if before.get(k) != v}
        edit.changes.delete_props = [k for k in before if k not in props]

    def _next_task(self, props: dict[str, Any]) -> datetime | None:
        anchor = props.get("StartDate") or props.get("DueDate")
        if anchor is None:
            return None
        found = recurrence.parse(props["Recurrence"], task=True)
        current = parse_utc(anchor)
        zone = tasks.day_zone(current, (self.ctx.tz, UTC))
        return recurrence.next_after(found, current, datetime.now(self.ctx.tz).date(), zone)

    def _expected(self, change_key: str | None) -> int | None:
        """The change number the update must find, or None when it may overwrite whatever is there."""
        if not change_key:
            if self.resolution == "NeverOverwrite":
                raise EWSError("ErrorChangeKeyRequired")
            return None
        number = expected_change(change_key)
        return None if self.resolution == "AlwaysOverwrite" else number

    # -- one change description ----------------------------------------------------------------
    def _apply(self, edit: _Edit, update: etree._Element) -> None:
        action = local(update.tag)
        path = first_path(update)
        if action == "DeleteItemField":
            _delete(edit, path)
            return
        value = _value_element(update)
        if action == "AppendToItemField":
            self._append(edit, path, value)
        elif isinstance(path, ExtendedField):
            _set_extended(edit, path, value)
        elif isinstance(path, IndexedPath):
            _set_indexed(edit, path, value)
        else:
            self._set(edit, path, value)

    def _set(self, edit: _Edit, path: FieldPath, value: etree._Element) -> None:
        node = _only(value, path.element)
        if path.element == "Body":
            edit.set_body(parse_body(node))
        elif path.element == "MimeContent":
            _set_mime(edit, node)
        else:
            edit.set(path.element, convert(edit.element(path.element, "ErrorInvalidPropertySet"), node, self.ctx))

    def _append(self, edit: _Edit, path: Path, value: etree._Element) -> None:
        if not isinstance(path, FieldPath) or path.element not in _APPENDABLE:
            raise EWSError("ErrorInvalidPropertyAppend", "This property does not support AppendToItemField.")
        node = _only(value, path.element)
        if path.element == "Body":
            edit.set_body(_append_body(edit.body(), parse_body(node)))
            return
        edit.element(path.element, "ErrorInvalidPropertyAppend")
        current = edit.value(path.element)
        if not current:
            edit.set(path.element, etree.tostring(node, encoding="unicode"))
            return
        container = parse_fragment(current)
        container.extend(copy.deepcopy(child) for child in node)
        edit.set(path.element, etree.tostring(container, encoding="unicode"))


def _value_element(update: etree._Element) -> etree._Element:
    """The item element of a Set/AppendToItemField, which carries the new value."""
    for child in update:
        if local(child.tag) in ITEM_ELEMENTS:
            return child
    raise EWSError("ErrorIncorrectUpdatePropertyCount", "The change has no item element with the new value.")


def _only(value: etree._Element, name: str) -> etree._Element:
    """The one property the item element may carry, which must be the one the path names."""
    if len(value) != 1:
        raise EWSError("ErrorIncorrectUpdatePropertyCount", "Each change must carry exactly one property.")
    if local(value[0].tag) != name:
        raise EWSError("ErrorUpdatePropertyMismatch", f"The change names {name} but carries {local(value[0].tag)}.")
    return value[0]


def _set_extended(edit: _Edit, path: ExtendedField, value: etree._Element) -> None:
    node = _only(value, "ExtendedProperty")
    field, stored = parse_property(node)
    if field.key != path.key:
        raise EWSError("ErrorUpdatePropertyMismatch", "The extended property differs from the one the path names.")
    mapped: dict[str, Any] = {}
    if mapi.apply_write(mapped, stored):
        for name, v in mapped.items():
            edit.set(name, v)
    else:
        edit.set_extended(stored)


def _indexed_parts(path: IndexedPath) -> tuple[str, str | None]:
    """The dictionary and, for physical addresses, the one field of the entry the path names."""
    parts = path.uri.split(":")
    return path.element, parts[2] if len(parts) == 3 else None


def _set_indexed(edit: _Edit, path: IndexedPath, value: etree._Element) -> None:
    container_name, field = _indexed_parts(path)
    edit.element(container_name, "ErrorInvalidPropertySet")
    new_entry = _only(value, container_name).find(t("Entry"))
    if new_entry is None or new_entry.get("Key") != path.index:
        raise EWSError("ErrorUpdatePropertyMismatch", f"The change carries no {container_name} entry {path.index}.")
    current = edit.value(container_name)
    container = parse_fragment(current) if current else etree.Element(t(container_name), nsmap={"t": T})
    entry = _entry(container, path.index)
    if field is None:
        if entry is not None:
            container.remove(entry)
        container.append(copy.deepcopy(new_entry))
    else:
        new_value = new_entry.find(t(field))
        if new_value is None:
            raise EWSError("ErrorUpdatePropertyMismatch", f"The change carries no {field} for {path.index}.")
        if entry is None:
            entry = sub(container, t("Entry"), Key=path.index)
        _put_in_order(entry, copy.deepcopy(new_value))
    edit.set(container_name, etree.tostring(container, encoding="unicode"))


def _entry(container: etree._Element, key: str) -> etree._Element | None:
    return next((e for e in container.findall(t("Entry")) if e.get("Key") == key), None)


def _put_in_order(entry: etree._Element, node: etree._Element) -> None:
    """Replace or add one field of a physical address entry, keeping the schema's field order."""
    order = [e.name for e in schema().elements("PhysicalAddressDictionaryEntryType")]
    old = entry.find(node.tag)
    if old is not None:
        entry.remove(old)
    before = order[:order.index(local(node.tag))]
    entry.insert(sum(1 for child in entry if local(child.tag) in before), node)


def _delete(edit: _Edit, path: Path) -> None:
    if isinstance(path, ExtendedField):
        edit.delete_extended(path.key)
    elif isinstance(path, IndexedPath):
        _delete_indexed(edit, path)
    elif path.element == "Body":
        edit.set_body(None)
    elif path.element != "MimeContent":  # MIME follows the properties; there is nothing of its own to delete
        edit.element(path.element, "ErrorInvalidPropertyDelete")
        edit.delete(path.element)


def _delete_indexed(edit: _Edit, path: IndexedPath) -> None:
    container_name, field = _indexed_parts(path)
    edit.element(container_name, "ErrorInvalidPropertyDelete")
    current = edit.value(container_name)
    container = parse_fragment(current) if current else None
    entry = _entry(container, path.index) if container is not None else None
    if container is None or entry is None:
        return
    if field is not None and entry.find(t(field)) is not None:
        entry.remove(entry.find(t(field)))
    if field is None or not len(entry):
        container.remove(entry)
    if len(container):
        edit.set(container_name, etree.tostring(container, encoding="unicode"))
    else:
        edit.delete(container_name)


def _set_mime(edit: _Edit, node: etree._Element) -> None:
    """New MIME content replaces the properties and body the message carries."""
    try:
        raw = base64.b64decode(node.text or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EWSError("ErrorMimeContentInvalid", "MimeContent is not valid base64.") from exc
    parsed = mime.parse_message(raw)
    for name, value in parsed.props.items():
        if name != "ItemClass":
            edit.set(name, value)
    edit.set_body(parsed.body)


def _append_body(current: Body | None, extra: Body) -> Body:
    """The stored body with ``extra`` added at its end, in the stored body's format."""
    if current is None or not current.text:
        return extra
    if current.body_type == "Text":
        text = extra.text if extra.body_type == "Text" else bodies.html_to_text(extra.text)
        return Body("Text", current.text + text)
    markup = extra.text if extra.body_type == "HTML" else bodies.text_to_html(extra.text)
    head, found, tail = current.text.rpartition("</body>")
    return Body("HTML", head + markup + found + tail if found else current.text + markup)


def _derive(edit: _Edit) -> None:
    """Recompute what the server derives (DisplayTo ...) from the properties this update touched."""
    changes = edit.changes
    touched = {name: edit.value(name) for name in [*changes.set_props, *changes.delete_props]}
    derived = dict(touched)
    derive_properties(derived)
    for name, value in derived.items():
        if name not in touched and edit.item.props.get(name) != value:
            edit.set(name, value)


def _keeps_mime(changes: ItemChanges) -> bool:
    return (changes.body is None and not changes.delete_body
            and set(changes.set_props) | set(changes.delete_props) <= _MIME_NEUTRAL
            and not any(key.startswith(_INTERNET_HEADERS)
                        for key in [*changes.delete_extended, *(v.key for v in changes.set_extended)]))
