"""Values the store hands out and takes in. Protocol-neutral: no XML, no SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> str:
    """Now as the ISO 8601 UTC text the store keeps datetimes in (second precision)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Domain:
    id: int
    name: str
    created: str


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    guid: str
    address: str
    display_name: str
    database_id: int
    database_name: str
    database_guid: str
    aliases: tuple[str, ...] = ()
    kind: str = "user"  # "user", or a resource mailbox: "room" or "equipment"


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """What the directory says of a mailbox beyond its addresses: ``attributes`` by the EWS Contact
    element name (``ATTRIBUTES`` in store/directory.py), ``phones`` by PhoneNumbers key."""

    attributes: dict[str, str] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    manager: Mailbox | None = None
    direct_reports: tuple[Mailbox, ...] = ()


@dataclass(frozen=True, slots=True)
class Group:
    """A public distribution group (or, flagged ``room_list``, a room list) in the directory."""

    id: int
    address: str
    display_name: str
    room_list: bool = False


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One member of a group: a mailbox, a nested group, or an external address (``mailbox`` and
    ``group`` both None)."""

    address: str
    display_name: str
    mailbox: Mailbox | None = None
    group: Group | None = None


@dataclass(frozen=True, slots=True)
class ExtendedValue:
    """One extended (MAPI) property: ``key`` names it (see ``extended_key``), ``value`` is the
    text form EWS uses (a string, or a list of strings for array types)."""

    key: str
    prop_type: str
    value: str | list[str]


def extended_key(tag: int | None = None, set_guid: str | None = None, name: str | None = None,
                 prop_id: int | None = None) -> str:
    """The canonical name of an extended property: ``tag:0x0037`` or
    ``set:{guid}:name:X`` / ``set:{guid}:id:0x8501``."""
    if tag is not None:
        return f"tag:0x{tag:04x}"
    guid = (set_guid or "").lower()
    if name is not None:
        return f"set:{guid}:name:{name}"
    return f"set:{guid}:id:0x{prop_id or 0:04x}"


@dataclass(slots=True)
class Body:
    body_type: str  # "HTML" or "Text"
    text: str


@dataclass(slots=True)
class Attachment:
    """A file attachment (``content`` = bytes) or an item attachment (``content`` = the stored
    form of the attached item, produced and read by the content layer)."""

    kind: str
    name: str | None = None
    content_type: str | None = None
    content_id: str | None = None
    content_location: str | None = None
    is_inline: bool = False
    is_contact_photo: bool = False
    content: bytes = b""
    id: int | None = None
    item_id: int | None = None
    size: int = 0
    last_modified: str = ""


@dataclass(slots=True)
class Folder:
    id: int
    mailbox_id: int
    parent_id: int | None
    distinguished_id: str | None
    display_name: str
    folder_class: str | None
    change_number: int
    created: str
    modified: str
    total_count: int
    associated_count: int
    unread_count: int
    child_folder_count: int
    hidden: bool = False
    extended: list[ExtendedValue] = field(default_factory=list)


@dataclass(slots=True)
class Item:
    """An item of any class. ``props`` holds every property by its EWS element name (``Subject``,
    ``IsRead``, ``ToRecipients`` ...): simple values as Python scalars, datetimes as ISO UTC text,
    complex values in the content layer's serialised form. The store keeps some of them in
    columns for sorting and filtering; callers never need to know which."""

    id: int
    mailbox_id: int
    folder_id: int
    change_number: int
    props: dict[str, Any]
    body: Body | None = None
    mime: bytes | None = None
    extended: list[ExtendedValue] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    created_by: int | None = None  # the mailbox that created it through EWS, if any

    @property
    def item_class(self) -> str:
        return self.props.get("ItemClass") or "IPM.Note"


@dataclass(slots=True)
class NewItem:
    """What a caller hands the store to create an item."""

    props: dict[str, Any]
    body: Body | None = None
    mime: bytes | None = None
    extended: list[ExtendedValue] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    created_by: int | None = None


@dataclass(slots=True)
class Delivery:
    """A message for one mailbox's Inbox, or another of its distinguished folders (``Items.deliver``);
    ``message_id`` with ``key`` recognises a redelivery. ``key`` tells apart copies of one message
    a mailbox keeps side by side: a delegate's copy of its principal's meeting message names the
    principal, the mailbox's own copy (None) nobody."""

    mailbox: Mailbox
    item: NewItem
    message_id: str | None = None
    folder: str = "inbox"
    key: str | None = None


@dataclass(slots=True)
class ItemChanges:
    """A set of changes to apply to one item in one transaction."""

    set_props: dict[str, Any] = field(default_factory=dict)
    delete_props: list[str] = field(default_factory=list)
    body: Body | None = None
    delete_body: bool = False
    set_extended: list[ExtendedValue] = field(default_factory=list)
    delete_extended: list[str] = field(default_factory=list)
    keep_mime: bool = False  # True when nothing that MIME carries changed (flags, categories)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    mailbox_id: int
    object_kind: str
    object_id: int
    action: str
    folder_id: int | None
    old_folder_id: int | None
    old_object_id: int | None
    committed: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One access to ``mailbox`` by ``caller`` under ``right`` (owner, impersonation, delegate)."""

    time: str
    caller: str
    mailbox: str
    right: str
    operation: str
    result: str
    client_ip: str
    folder_id: int | None = None
    item_id: int | None = None
