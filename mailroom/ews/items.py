"""Items in and out of XML, generic over every item type the schema defines.

Incoming item elements become store values: simple-typed properties as Python values,
complex ones as their serialised element. Outgoing items are written in the schema's element
order for their type, with the properties the shape asks for.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from mailroom.access.identity import DELEGATE
from mailroom.access.permissions import Access, allows
from mailroom.content import body as bodies
from mailroom.content.properties import derive_properties
from mailroom.store import ids
from mailroom.store.model import Body, Item, Mailbox, NewItem

from . import calendar, mapi, tasks, timezones, versions
from .context import Context
from .dates import parse_utc, typed_value
from .errors import EWSError, SOAPFault
from .extended import parse_property, property_element
from .folders import effective_rights
from .paths import Shape
from .permissions import rights_element
from .schema import ITEM_ELEMENTS, Element, schema
from .xml import Writer, append_written, escape, escape_attribute, local, parse_fragment, sub, t, written_fragment

DEFAULT_CLASS = {
    "Message": "IPM.Note", "CalendarItem": "IPM.Appointment", "Contact": "IPM.Contact",
    "DistributionList": "IPM.DistList", "Task": "IPM.Task", "PostItem": "IPM.Post", "Item": "IPM.Item",
    "MeetingMessage": "IPM.Schedule.Meeting", "MeetingRequest": "IPM.Schedule.Meeting.Request",
    "MeetingResponse": "IPM.Schedule.Meeting.Resp.Pos", "MeetingCancellation": "IPM.Schedule.Meeting.Canceled",
    "SharingMessage": "IPM.Sharing",
}

# Computed by the server; a client setting them gets ErrorInvalidPropertySet.
READ_ONLY = frozenset({
    "ItemId", "ParentFolderId", "DateTimeCreated", "Size", "HasAttachments", "LastModifiedName",
    "LastModifiedTime", "DisplayCc", "DisplayTo", "DisplayBcc", "EffectiveRights", "IsSubmitted", "IsFromMe",
    "IsResend", "IsUnmodified", "ResponseObjects", "ConversationId", "UniqueBody", "NormalizedBody", "TextBody",
    "Preview", "InstanceKey", "StoreEntryId", "WebClientReadFormQueryString", "WebClientEditFormQueryString",
    "IconIndex", "SortKey", "SearchKey", "MimeContentUTF8", "CompleteName", "HasPicture",
})
BODY_ELEMENTS = frozenset({"Body", "UniqueBody", "NormalizedBody", "TextBody"})
# Never part of a FindItem row (Exchange returns them only from GetItem).
NOT_IN_FIND = frozenset({
    "MimeContent", "Body", "UniqueBody", "NormalizedBody", "TextBody", "Attachments", "ToRecipients",
    "CcRecipients", "BccRecipients", "ReplyTo", "InternetMessageHeaders", "RequiredAttendees",
    "OptionalAttendees", "Resources", "ModifiedOccurrences", "DeletedOccurrences", "Members",
})
# Left out of the Default shape (asked for by name, or by AllProperties for _ALL_EXTRA).
_NOT_DEFAULT = frozenset({"MimeContent", "UniqueBody", "NormalizedBody", "TextBody", "Preview", "InstanceKey",
                          "InternetMessageHeaders"})
_ALL_EXTRA = frozenset({"Preview", "InstanceKey", "UniqueBody", "InternetMessageHeaders"})
_VERSION_GATED = {"ConversationId": "Exchange2010", "UniqueBody": "Exchange2010", "Preview": "Exchange2013",
                  "TextBody": "Exchange2013", "NormalizedBody": "Exchange2013", "InstanceKey": "Exchange2013",
                  "EffectiveRights": "Exchange2007_SP1", "LastModifiedName": "Exchange2007_SP1",
                  "LastModifiedTime": "Exchange2007_SP1", "IsAssociated": "Exchange2010",
                  "WebClientReadFormQueryString": "Exchange2010", "WebClientEditFormQueryString": "Exchange2010",
                  "StartTimeZone": "Exchange2010", "EndTimeZone": "Exchange2010", "StartTimeZoneId": "Exchange2013",
                  "EndTimeZoneId": "Exchange2013", "HasPicture": "Exchange2010", "ProposedStart": "Exchange2013",
                  "ProposedEnd": "Exchange2013"}


def element_for_class(item_class: str, ctx: Context) -> str:
    """The element an item of this class is returned as. Classes without a strong EWS type
    (IPM.Sharing, IPM.InfoPath, custom ones) are Message from Exchange2007_SP1 on, else Item."""
    c = item_class.lower()
    if c == "ipm.note" or c.startswith(("ipm.note.", "report.")):
        return "Message"
    for prefix, name in (("ipm.appointment", "CalendarItem"), ("ipm.contact", "Contact"),
                         ("ipm.distlist", "DistributionList"), ("ipm.post", "PostItem"),
                         ("ipm.schedule.meeting.request", "MeetingRequest"),
                         ("ipm.schedule.meeting.resp", "MeetingResponse"),
                         ("ipm.schedule.meeting.canceled", "MeetingCancellation")):
        if c.startswith(prefix):
            return name
    if c == "ipm.task" or c.startswith("ipm.task."):
        return "Task"
    return "Message" if ctx.at_least("Exchange2007_SP1") else "Item"


# -- reading requests ---------------------------------------------------------------------------
def element_type(node: etree._Element) -> str:
    name = local(node.tag)
    if name not in ITEM_ELEMENTS:
        raise SOAPFault("ErrorSchemaValidation", f"{name} is not an item type.")
    return ITEM_ELEMENTS[name]


def convert(element: Element, node: etree._Element, ctx: Context) -> Any:
    """The stored value of one property element."""
    if element.kind == "list":
        return [s.text or "" for s in node.findall(t("String"))]
    if not element.simple:
        _check_keys(element.name, node)
        return etree.tostring(node, encoding="unicode")
    if element.kind == "string":
        return node.text or ""
    text = (node.text or "").strip()
    if element.name in tasks.DATE_ELEMENTS:
        return tasks.client_day(text, ctx.tz)
    try:
        return typed_value(element.kind, text, ctx.tz)
    except ValueError as exc:
        raise SOAPFault("ErrorSchemaValidation", f"{element.name}: {text!r} is not a valid value.") from exc


# A contact's dictionaries and the enumeration their entries' Key comes from.
_DICTIONARY_KEYS = {"EmailAddresses": "EmailAddressKeyType", "PhysicalAddresses": "PhysicalAddressKeyType",
                    "PhoneNumbers": "PhoneNumberKeyType", "ImAddresses": "ImAddressKeyType"}


def _check_keys(name: str, node: etree._Element) -> None:
    """An entry key the schema does not list fails schema validation, as on Exchange."""
    if name not in _DICTIONARY_KEYS:
        return
    allowed = schema().enumeration(_DICTIONARY_KEYS[name])
    for entry in node.iterchildren(t("Entry")):
        if entry.get("Key") not in allowed:
            raise SOAPFault("ErrorSchemaValidation", f"{name}: {entry.get('Key')!r} is not a valid entry key.")


def parse_body(node: etree._Element) -> Body:
    body_type = node.get("BodyType") or "Text"
    if body_type not in ("HTML", "Text"):
        raise SOAPFault("ErrorSchemaValidation", f"BodyType {body_type!r} is not valid.")
    return Body(body_type, node.text or "")


def parse_item(node: etree._Element, ctx: Context, attachments_parser: Any = None) -> NewItem:
    """A new item from its element (CreateItem, UploadItems, an item attachment)."""
    type_name = element_type(node)
    new = NewItem(props={"ItemClass": DEFAULT_CLASS[local(node.tag)]})
    explicit: set[str] = set()
    mime_node = None
    for child in node:
        name = local(child.tag)
        if name == "MimeContent":
            mime_node = child
        elif name == "ExtendedProperty":
            field, value = parse_property(child, ctx.tz)
            mapi.apply_write(new.props, value) or new.extended.append(value)
        elif name == "Body":
            new.body = parse_body(child)
        elif name == "Attachments":
            if attachments_parser is None:
                raise EWSError("ErrorInvalidPropertySet", "Attachments cannot be set here.")
            new.attachments.extend(attachments_parser(child, ctx))
        elif name in READ_ONLY:
            raise EWSError("ErrorInvalidPropertySet", f"The property {name} is read-only.")
        else:
            element = schema().element(type_name, name)
            if element is None:
                raise SOAPFault("ErrorSchemaValidation", f"{name} is not a property of {type_name}.")
            new.props[name] = convert(element, child, ctx)
            explicit.add(name)
    if mime_node is not None:
        _merge_mime(new, mime_node, explicit_class="ItemClass" in explicit)
    derive_properties(new.props)
    return new


def _merge_mime(new: NewItem, mime_node: etree._Element, explicit_class: bool) -> None:
    """Properties come from the MIME message; elements the client also sent win."""
    from mailroom.content import mime

    try:
        raw = base64.b64decode("".join((mime_node.text or "").split()), validate=True)
    except ValueError as exc:
        raise EWSError("ErrorMimeContentInvalid", "MimeContent is not valid base64.") from exc
    parsed = mime.parse_message(raw)
    props = dict(parsed.props)
    props.update({k: v for k, v in new.props.items() if k != "ItemClass" or explicit_class})
    props.setdefault("ItemClass", new.props["ItemClass"])
    new.props = props
    new.body = new.body or parsed.body
    new.attachments = parsed.attachments + new.attachments
    new.mime = raw


# -- writing responses --------------------------------------------------------------------------
def conversation_id(item: Item) -> str:
    topic = (item.props.get("ConversationTopic") or item.props.get("Subject") or "").lower()
    digest = hashlib.sha256(f"{item.mailbox_id}\0{topic}".encode()).digest()[:16]
    return base64.b64encode(b"\x01" + digest).decode()


def wanted_properties(shape: Shape, type_name: str, version: str, find: bool) -> set[str]:
    if shape.base == "IdOnly":
        wanted = {"ItemId"}
    else:
        wanted = {e.name for e in schema().elements(type_name)} - _NOT_DEFAULT
        if shape.base == "AllProperties":
            wanted |= _ALL_EXTRA
    wanted |= shape.fields | {i.element for i in shape.indexed}
    if shape.include_mime:
        wanted.add("MimeContent")
    if find:
        wanted -= NOT_IN_FIND
    return {w for w in wanted if w not in _VERSION_GATED or versions.at_least(version, _VERSION_GATED[w])}


@dataclass(frozen=True, slots=True)
class _Step:
    """One element to write: its schema entry, its tag (``t:Name``) with its start and end tags,
    and a renderer when the value is computed."""

    element: Element
    tag: str
    special: Callable[..., None] | None
    plain: bool = False  # a simple element: a stored str is its text as it is
    open: str = ""
    close: str = ""


@dataclass(frozen=True, slots=True)
class _Plan:
    """The elements a shape writes for one item type, in schema order. ``stored`` maps the names of
    plain stored properties to their position; ``computed`` lists positions always visited."""

    steps: tuple[_Step, ...]
    stored: dict[str, int]
    computed: tuple[int, ...]


def _plan(shape: Shape, type_name: str, ctx: Context, find: bool) -> _Plan:
    return _cached_plan(type_name, shape.base, frozenset(shape.fields), frozenset(i.element for i in shape.indexed),
                        shape.include_mime, bool(shape.extended), ctx.version, find)


@functools.lru_cache(maxsize=1024)
def _cached_plan(type_name: str, base: str, fields: frozenset[str], indexed: frozenset[str], include_mime: bool,
                 extended: bool, version: str, find: bool) -> _Plan:
    probe = Shape(base=base, include_mime=include_mime, fields=set(fields) | set(indexed))
    wanted = wanted_properties(probe, type_name, version, find)
    steps = []
    for element in schema().elements(type_name):
        if element.name == "ExtendedProperty":
            if extended:
                steps.append(_step(element, _extended))
        elif element.name in wanted:
            steps.append(_step(element, _SPECIAL.get(element.name), element.simple and element.kind != "list"))
    return _Plan(tuple(steps), {s.element.name: i for i, s in enumerate(steps) if s.special is None},
                 tuple(i for i, s in enumerate(steps) if s.special is not None))


def _step(element: Element, special: Callable[..., None] | None, plain: bool = False) -> _Step:
    tag = f"t:{element.name}"
    return _Step(element, tag, special, plain, f"<{tag}>", f"</{tag}>")


def render(out: Writer, mailbox: Mailbox, item: Item, shape: Shape, ctx: Context, find: bool = False,
           mime: bytes | None = None) -> None:
    """Write the item's element with the shape's properties, in schema order."""
    tag = f"t:{element_for_class(item.item_class, ctx)}"
    parts = out.parts
    parts.append(f"<{tag}>")
    props = item.props
    plan = _plan(shape, ITEM_ELEMENTS[tag[2:]], ctx, find)
    stored = plan.stored
    # Visit only what this item has (plus the computed elements), in schema order.
    for position in sorted([stored[k] for k in props.keys() & stored.keys()] + list(plan.computed)):
        step = plan.steps[position]
        if step.special is not None:
            step.special(out, step, item, mailbox, shape, ctx, mime)
            continue
        value = props[step.element.name]
        if step.plain and type(value) is str:  # most stored values: no conversion to decide
            parts.append(step.open + escape(value) + step.close)
        elif value is not None:
            _render_value(out, step, value, shape)
    parts.append(f"</{tag}>")


def render_element(parent: etree._Element, mailbox: Mailbox, item: Item, shape: Shape, ctx: Context,
                   find: bool = False, mime: bytes | None = None) -> etree._Element:
    """``render`` into a response still built as an lxml tree; returns the item's element."""
    out = Writer()
    render(out, mailbox, item, shape, ctx, find, mime)
    return append_written(parent, out.finish())


def _extended(out: Writer, _step: _Step, item: Item, mailbox: Mailbox, shape: Shape, *_: Any) -> None:
    stored = {e.key: e for e in item.extended}

    def build(holder: etree._Element) -> None:
        for field in shape.extended:
            value = stored.get(field.key) or mapi.read(field, item, mailbox)
            if value is not None:
                property_element(holder, field, value)
    out.built(build)


def _item_id(out: Writer, step: _Step, item: Item, mailbox: Mailbox, *_: Any) -> None:
    attrs = item_id_attrs(mailbox, item)
    out.parts.append(f'<t:ItemId Id="{escape_attribute(attrs["Id"])}" '
                     f'ChangeKey="{escape_attribute(attrs["ChangeKey"])}"/>')


def _parent_folder_id(out: Writer, step: _Step, item: Item, mailbox: Mailbox, *_: Any) -> None:
    out.parts.append(f'<t:ParentFolderId Id="{escape_attribute(ids.folder_id(mailbox.guid, item.folder_id))}"/>')


def _mime(out: Writer, step: _Step, item: Item, mailbox: Mailbox, shape: Shape, ctx: Context,
          mime: bytes | None) -> None:
    if mime is not None:
        out.leaf(step.tag, base64.b64encode(mime).decode("ascii"), {"CharacterSet": "UTF-8"})


def _body(out: Writer, step: _Step, item: Item, mailbox: Mailbox, shape: Shape, *_: Any) -> None:
    _render_body(out, step.element.name, item, shape)


def _attachments(out: Writer, step: _Step, item: Item, mailbox: Mailbox, *_: Any) -> None:
    if item.attachments:
        from .attachments import render_list

        out.built(lambda holder: render_list(etree.SubElement(holder, t("Attachments")), mailbox, item))


def _rights(out: Writer, step: _Step, item: Item, mailbox: Mailbox, shape: Shape, ctx: Context,
            *_: Any) -> None:
    """The owner's fixed rights, or, for a delegate, what its rights on the item's folder allow."""
    rights = ctx.rights.get(item.folder_id) if ctx.identity.right_over(mailbox) == DELEGATE else None
    if rights is None:
        out.parts.append(_owner_rights())
        return
    own = item.created_by == ctx.identity.mailbox.id
    granted = {"Delete": allows(rights, Access.DELETE, own), "Modify": allows(rights, Access.EDIT, own),
               "Read": allows(rights, Access.READ), "ViewPrivateItems": not ctx.hides_private(mailbox)}
    out.built(lambda holder: rights_element(holder, granted))


@functools.cache
def _owner_rights() -> str:
    """The EffectiveRights element of an item its owner reads (the same for every item)."""
    out = Writer()
    out.built(lambda holder: effective_rights(holder, folder=False))
    return out.finish()


def _conversation_id(out: Writer, step: _Step, item: Item, *_: Any) -> None:
    out.parts.append(f'<t:ConversationId Id="{escape_attribute(conversation_id(item))}"/>')


def _preview(out: Writer, step: _Step, item: Item, *_: Any) -> None:
    if item.body:
        text = item.body.text if item.body.body_type == "Text" else bodies.html_to_text(item.body.text)
        out.leaf(step.tag, bodies.preview(text))


def _instance_key(out: Writer, step: _Step, item: Item, *_: Any) -> None:
    out.leaf(step.tag, base64.b64encode(item.id.to_bytes(8, "big")).decode())


def _flag(default: bool = False, invert_of: str | None = None) -> Callable[..., None]:
    """A boolean the item may not store: written with its default (or as the inverse of another)."""
    def write(out: Writer, step: _Step, item: Item, *_: Any) -> None:
        props = item.props
        value = not props.get(invert_of, False) if invert_of else bool(props.get(step.element.name, default))
        out.parts.append(step.open + ("true" if value else "false") + step.close)
    return write


def _with_default(default: Callable[[Item, Mailbox, Context], str]) -> Callable[..., None]:
    def write(out: Writer, step: _Step, item: Item, mailbox: Mailbox, shape: Shape, ctx: Context,
              *_: Any) -> None:
        text = item.props.get(step.element.name) or default(item, mailbox, ctx)
        out.parts.append(step.open + escape(text) + step.close if text else f"<{step.tag}/>")
    return write


def _master_only(write: Callable[..., None]) -> Callable[..., None]:
    """A recurring master's computed element (FirstOccurrence ...): nothing for other items."""
    def render_for_master(out: Writer, step: _Step, item: Item, mailbox: Mailbox, *_: Any) -> None:
        if item.props.get("Recurrence") and not calendar.is_occurrence(item) and calendar.is_calendar(item.props):
            out.built(lambda holder: write(holder, step, item, mailbox))
    return render_for_master


@_master_only
def _occurrence_bounds(node: etree._Element, step: _Step, item: Item, mailbox: Mailbox) -> None:
    first, last = calendar.first_and_last(item)
    found = first if step.element.name == "FirstOccurrence" else last
    if found is not None:
        calendar.occurrence_info(node, step.element.name, mailbox, found, item_id_attrs(mailbox, item)["ChangeKey"])


@_master_only
def _modified_occurrences(node: etree._Element, step: _Step, item: Item, mailbox: Mailbox) -> None:
    found = calendar.modified(item)
    if found:
        holder = etree.SubElement(node, t(step.element.name))
        change_key = item_id_attrs(mailbox, item)["ChangeKey"]
        for occurrence in found:
            calendar.occurrence_info(holder, "Occurrence", mailbox, occurrence, change_key)


@_master_only
def _deleted_occurrences(node: etree._Element, step: _Step, item: Item, mailbox: Mailbox) -> None:
    starts = calendar.deleted_starts(item)
    if starts:
        holder = etree.SubElement(node, t(step.element.name))
        for start in starts:
            sub(etree.SubElement(holder, t("DeletedOccurrence")), t("Start"), start)


def _zone(which: str) -> Callable[..., None]:
    """StartTimeZone/EndTimeZone (a TimeZoneDefinition) or their *Id forms, from the zone ids kept."""
    def write(out: Writer, step: _Step, item: Item, *_: Any) -> None:
        zone_id = item.props.get(f"_{which}Zone")
        if zone_id is None:
            return
        if step.element.name.endswith("Id"):
            out.leaf(step.tag, zone_id)
        else:
            out.built(lambda holder: timezones.definition(holder, zone_id, full=False, tag=step.element.name))
    return write


def _meeting_time_zone(out: Writer, step: _Step, item: Item, mailbox: Mailbox, shape: Shape,
                       ctx: Context, *_: Any) -> None:
    """The Exchange 2007 form of the start zone; 2010 and later callers get StartTimeZone instead."""
    zone_id = item.props.get("_StartZone")
    if zone_id is not None and not ctx.at_least("Exchange2010"):
        start = item.props.get("Start")
        out.built(lambda holder: timezones.meeting_time_zone(holder, zone_id, parse_utc(start) if start else None))


def _associated(out: Writer, step: _Step, item: Item, mailbox: Mailbox, *_: Any) -> None:
    """A meeting message's calendar item (kept as its row id, as the id names the mailbox)."""
    row = item.props.get("_AssociatedCalendarItem")
    if row is not None:
        out.leaf(step.tag, None, {"Id": ids.item_id(mailbox.guid, row)})


_ANSWERS = ("ReplyToItem", "ReplyAllToItem", "ForwardItem")
_RESPONDING = ("AcceptItem", "TentativelyAcceptItem", "DeclineItem")


def _response_objects(out: Writer, step: _Step, item: Item, *_: Any) -> None:
    """What a client may answer a meeting item with (only meetings list them here)."""
    c, props = item.item_class, item.props
    if c.startswith("IPM.Schedule.Meeting.Request"):  # the principal's copy for information: no answers
        found = _ANSWERS if props.get("MeetingRequestType") == "PrincipalWantsCopy" else _RESPONDING + _ANSWERS
    elif c.startswith("IPM.Schedule.Meeting.Canceled"):
        found = ("RemoveItem", *_ANSWERS) if not props.get("IsOrganizer") else _ANSWERS
    elif c.startswith("IPM.Schedule.Meeting"):
        found = _ANSWERS
    elif calendar.is_calendar(props) and props.get("IsMeeting"):
        organizer = props.get("MyResponseType", "Organizer") == "Organizer"
        found = ("CancelCalendarItem", "ForwardItem") if organizer else (
            ("RemoveItem",) if props.get("IsCancelled") else _RESPONDING + _ANSWERS)
    else:
        return
    out.start(step.tag)
    for name in found:
        out.leaf(f"t:{name}")
    out.end()


# CompleteNameType's parts and the contact properties they come from.
_COMPLETE_NAME = (("FirstName", "GivenName"), ("MiddleName", "MiddleName"), ("LastName", "Surname"),
                  ("Suffix", "Generation"), ("Initials", "Initials"), ("FullName", "DisplayName"),
                  ("Nickname", "Nickname"))


def _complete_name(out: Writer, step: _Step, item: Item, *_: Any) -> None:
    """A contact's CompleteName, made of its name properties as Exchange does (none: no element)."""
    parts = [(part, item.props.get(source)) for part, source in _COMPLETE_NAME]
    if any(value for _, value in parts):
        out.start(step.tag)
        for part, value in parts:
            if value:
                out.leaf(f"t:{part}", value)
        out.end()


_SPECIAL: dict[str, Callable[..., None]] = {
    "ItemId": _item_id, "ParentFolderId": _parent_folder_id, "MimeContent": _mime, "Attachments": _attachments,
    "Body": _body, "UniqueBody": _body, "NormalizedBody": _body, "TextBody": _body,
    "EffectiveRights": _rights, "ConversationId": _conversation_id, "Preview": _preview,
    "InstanceKey": _instance_key, "IsSubmitted": _flag(), "IsFromMe": _flag(), "IsResend": _flag(),
    "IsDraft": _flag(), "ReminderIsSet": _flag(), "IsUnmodified": _flag(invert_of="IsDraft"),
    "Culture": _with_default(lambda _i, _m, ctx: ctx.culture),
    "LastModifiedName": _with_default(lambda _i, mailbox, _c: mailbox.display_name),
    "Sensitivity": _with_default(lambda *_: "Normal"),
    "DisplayTo": _with_default(lambda *_: ""), "DisplayCc": _with_default(lambda *_: ""),
    "FirstOccurrence": _occurrence_bounds, "LastOccurrence": _occurrence_bounds,
    "ModifiedOccurrences": _modified_occurrences, "DeletedOccurrences": _deleted_occurrences,
    "StartTimeZone": _zone("Start"), "EndTimeZone": _zone("End"), "StartTimeZoneId": _zone("Start"),
    "EndTimeZoneId": _zone("End"), "MeetingTimeZone": _meeting_time_zone, "AssociatedCalendarItemId": _associated,
    "ResponseObjects": _response_objects,
    "CompleteName": _complete_name, "HasPicture": _flag(),
}


def _render_value(out: Writer, step: _Step, value: Any, shape: Shape) -> None:
    element = step.element
    if element.kind == "list":
        out.start(step.tag)
        for text in value:
            out.leaf("t:String", text)
        out.end()
    elif not element.simple:
        if shape.indexed and element.name not in shape.fields and any(i.element == element.name
                                                                      for i in shape.indexed):
            fragment = parse_fragment(value)
            keys = {i.index for i in shape.indexed if i.element == element.name}
            for entry in list(fragment):
                if entry.get("Key") not in keys and entry.get("HeaderName") not in keys:
                    fragment.remove(entry)
            out.element(fragment)
        else:
            out.parts.append(written_fragment(value))
    elif isinstance(value, bool):
        out.parts.append(step.open + ("true" if value else "false") + step.close)
    elif isinstance(value, float) and value.is_integer() and element.kind == "int":
        out.leaf(step.tag, str(int(value)))
    else:
        out.leaf(step.tag, str(value))


def _render_body(out: Writer, key: str, item: Item, shape: Shape) -> None:
    if item.body is None:
        if key == "Body":
            out.leaf("t:Body", None, {"BodyType": "Text"})
        return
    stored = item.body
    want = shape.body_type
    if key == "TextBody":
        want = "Text"
    elif key == "NormalizedBody":
        want = "HTML"
    if want in ("Best", stored.body_type) or want not in ("HTML", "Text"):
        body_type, text = stored.body_type, stored.text
    elif want == "Text":
        body_type, text = "Text", bodies.html_to_text(stored.text)
    else:
        body_type, text = "HTML", bodies.text_to_html(stored.text)
    out.parts.append(f'<t:{key} BodyType="{escape_attribute(body_type)}" IsTruncated="false">{escape(text)}</t:{key}>')


def item_id_attrs(mailbox: Mailbox, item: Item) -> dict[str, str]:
    """The Id and the current ChangeKey of an item, as ItemId attributes."""
    kind = ids.CHANGEKEY_CALENDAR if item.item_class.startswith("IPM.Appointment") else ids.CHANGEKEY_MESSAGE
    instance = item.props.get("_Instance")
    return {"Id": ids.item_id(mailbox.guid, item.id) if instance is None else
            ids.occurrence_id(mailbox.guid, item.id, instance),
            "ChangeKey": ids.change_key(kind, mailbox.database_guid, item.change_number)}


def mime_of(ctx: Context, mailbox: Mailbox, item: Item) -> bytes:
    """The item's MIME: as it arrived, or generated from its properties and attachments."""
    from mailroom.content import mime

    stored = ctx.store.items.mime(mailbox, item.id)
    if stored is not None:
        return stored
    return mime.build_message(item.props, item.body, ctx.store.items.attachments(mailbox, item.id))
