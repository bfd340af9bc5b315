"""The relational schema shared by every back end (SQLite and PostgreSQL).

Datetimes are stored as ISO 8601 UTC text (``2026-01-02T03:04:05Z``): it sorts correctly,
reads the same on both back ends and matches how item properties are kept in ``props``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

metadata = MetaData()

Blob = LargeBinary().with_variant(BYTEA(), "postgresql")
Json = JSON().with_variant(JSONB(), "postgresql")
# An item's Sensitivity on each back end, of the props column ``{}`` names: the partial index of
# private items and the queries it serves (sqlquery.PRIVATE) must spell it alike.
SENSITIVITY = {"sqlite": "json_extract({}, '$.Sensitivity')", "postgresql": "({} ->> 'Sensitivity')"}
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite only autoincrements INTEGER keys
# Row ids name objects in EWS ids, so they are never reused: SQLite tables say AUTOINCREMENT
# (without it SQLite hands a deleted last row's id to the next insert); PostgreSQL sequences never reuse.

mailbox_databases = Table(
    "mailbox_databases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("guid", String(36), nullable=False, unique=True),
    # The last change number handed out in this database; bumped inside each writing transaction,
    # which also orders commits (the row lock is held until commit).
    Column("last_change", BigInteger, nullable=False, default=0),
    sqlite_autoincrement=True,
)

domains = Table(
    "domains",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created", String(32), nullable=False),
    sqlite_autoincrement=True,
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("database_id", ForeignKey("mailbox_databases.id"), nullable=False),
    Column("domain_id", ForeignKey("domains.id"), nullable=False),
    Column("address", String(320), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False),
    Column("password_hash", String(256)),
    Column("created", String(32), nullable=False),
    # "user", or a resource mailbox: "room" or "equipment" (Exchange's RecipientTypeDetails).
    Column("kind", String(16), nullable=False, server_default="user"),
    sqlite_autoincrement=True,
)

# What the directory says of a mailbox's owner (GAL attributes: department, job title, phones,
# office, address...), as the EWS Contact element names them; the manager is another mailbox.
directory_attributes = Table(
    "directory_attributes",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("manager_id", ForeignKey("mailboxes.id", ondelete="SET NULL"), index=True),
    Column("attributes", Json, nullable=False),
)

# Public distribution groups (a room list is a group flagged as one).
groups = Table(
    "groups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("domain_id", ForeignKey("domains.id"), nullable=False),
    Column("address", String(320), nullable=False, unique=True),
    Column("display_name", String(256), nullable=False),
    Column("room_list", Boolean, nullable=False, default=False),
    Column("created", String(32), nullable=False),
    sqlite_autoincrement=True,
)

# A group's members: a mailbox, another group, or an external address (exactly one of the three).
group_members = Table(
    "group_members",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True),
    Column("member_group_id", ForeignKey("groups.id", ondelete="CASCADE"), index=True),
    Column("address", String(320)),
    sqlite_autoincrement=True,
)

aliases = Table(
    "aliases",
    metadata,
    Column("address", String(320), primary_key=True),
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False, index=True),
)

folders = Table(
    "folders",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", ForeignKey("folders.id", ondelete="CASCADE")),
    Column("distinguished_id", String(64)),
    Column("display_name", String(256), nullable=False),
    Column("folder_class", String(256)),
    Column("change_number", BigInteger, nullable=False),
    Column("created", String(32), nullable=False),
    Column("modified", String(32), nullable=False),
    Column("total_count", Integer, nullable=False, default=0),
    Column("associated_count", Integer, nullable=False, default=0),
    Column("unread_count", Integer, nullable=False, default=0),
    Column("child_folder_count", Integer, nullable=False, default=0),
    Column("hidden", Boolean, nullable=False, default=False),
    UniqueConstraint("mailbox_id", "distinguished_id", name="uq_folders_distinguished"),
    Index("ix_folders_parent", "parent_id", "display_name"),
    Index("ix_folders_mailbox", "mailbox_id"),
    sqlite_autoincrement=True,
)

items = Table(
    "items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("folder_id", ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
    Column("change_number", BigInteger, nullable=False),
    Column("item_class", String(256), nullable=False),
    Column("subject", Text),
    Column("date_received", String(32)),
    Column("date_sent", String(32)),
    Column("date_created", String(32), nullable=False),
    Column("last_modified", String(32), nullable=False),
    Column("is_read", Boolean, nullable=False, default=False),
    Column("is_associated", Boolean, nullable=False, default=False),
    Column("importance", String(16), nullable=False, default="Normal"),
    Column("size", Integer, nullable=False, default=0),
    Column("has_attachments", Boolean, nullable=False, default=False),
    Column("message_id", String(998)),
    Column("body_type", String(8)),
    Column("body", Text),
    Column("props", Json, nullable=False),
    # The time a calendar item covers (a recurring master: from its first occurrence to the end of
    # its last, "9999-..." when it has no end), so a calendar view reads only what overlaps it.
    Column("span_start", String(32)),
    Column("span_end", String(32)),
    # The mailbox that created the item through EWS (for "Owned" edit/delete rights); NULL for
    # delivered or imported items, which nobody but the owner owns.
    Column("created_by", BigInteger),
    Index("ix_items_folder_received", "folder_id", "is_associated", "date_received", "id"),
    Index("ix_items_folder_created", "folder_id", "is_associated", "date_created", "id"),
    Index("ix_items_folder_subject", "folder_id", "is_associated", "subject"),
    Index("ix_items_folder_unread", "folder_id", "is_read"),
    Index("ix_items_message_id", "mailbox_id", "message_id"),
    Index("ix_items_folder_span", "folder_id", "is_associated", "span_end", "span_start"),
    # The private items of a folder (hidden from most delegates), counted without reading the rest.
    Index("ix_items_folder_private", "folder_id", "is_associated",
          sqlite_where=text(SENSITIVITY["sqlite"].format("props") + " = 'Private'"),
          postgresql_where=text(SENSITIVITY["postgresql"].format("props") + " = 'Private'")),
    sqlite_autoincrement=True,
)

item_mime = Table(
    "item_mime",
    metadata,
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("mime", Blob, nullable=False),
)

attachments = Table(
    "attachments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # "file" or "item"
    Column("name", Text),
    Column("content_type", String(255)),
    Column("content_id", String(998)),
    Column("content_location", Text),
    Column("is_inline", Boolean, nullable=False, default=False),
    Column("is_contact_photo", Boolean, nullable=False, default=False),
    Column("size", Integer, nullable=False, default=0),
    Column("last_modified", String(32), nullable=False),
    Column("content", Blob),  # file bytes, or the attached item's serialised form
    sqlite_autoincrement=True,
)

extended_properties = Table(
    "extended_properties",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE")),
    Column("folder_id", ForeignKey("folders.id", ondelete="CASCADE")),
    Column("prop_key", String(300), nullable=False),
    Column("prop_type", String(32), nullable=False),
    Column("value", Json, nullable=False),  # a string, or a list of strings for array types
    Column("str_value", Text),  # scalar value as text, for restrictions
    Column("num_value", Double),
    Index("ix_extprops_item", "item_id", "prop_key"),
    Index("ix_extprops_folder", "folder_id", "prop_key"),
    sqlite_autoincrement=True,
)

journal = Table(
    "journal",
    metadata,
    Column("database_id", ForeignKey("mailbox_databases.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("mailbox_id", BigInteger, nullable=False),
    Column("object_kind", String(8), nullable=False),  # "item" or "folder"
    Column("object_id", BigInteger, nullable=False),
    Column("action", String(16), nullable=False),
    Column("folder_id", BigInteger),  # the containing (parent) folder after the change
    Column("old_folder_id", BigInteger),  # for moves: where it was
    Column("old_object_id", BigInteger),  # for moves and copies: the source object
    Column("committed", String(32), nullable=False),
    Index("ix_journal_mailbox", "mailbox_id", "seq"),
)

impersonation_grants = Table(
    "impersonation_grants",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False),
    Column("scope_kind", String(16), nullable=False),  # all, domain, database, mailboxes or filter
    Column("scope_value", Text, nullable=False),  # "" for all; evaluated per request (see store/scopes.py)
    Column("created", String(32), nullable=False),
    UniqueConstraint("account_id", "scope_kind", "scope_value", name="uq_impersonation_grants"),
    sqlite_autoincrement=True,
)

folder_permissions = Table(
    "folder_permissions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("folder_id", ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
    # Whom the entry is for: a mailbox, or (user_id NULL) "Default" / "Anonymous".
    Column("user_id", ForeignKey("mailboxes.id", ondelete="CASCADE")),
    Column("distinguished_user", String(16)),
    Column("rights", Integer, nullable=False),  # PidTagMemberRights bits (mailroom.access.permissions.Right)
    Index("ix_folder_permissions_folder", "folder_id", "user_id"),
    sqlite_autoincrement=True,
)

delegates = Table(
    "delegates",
    metadata,
    Column("owner_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("delegate_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("receive_copies", Boolean, nullable=False, default=False),
    Column("view_private", Boolean, nullable=False, default=False),
    Column("created", String(32), nullable=False),
)

delegate_settings = Table(
    "delegate_settings",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("deliver_meeting_requests", String(40), nullable=False),
)

# Calendar processing settings (Set-CalendarProcessing): only the parameters a mailbox sets, by
# Exchange's name; the rest take Exchange's defaults (store/calendar_processing.py).
calendar_processing = Table(
    "calendar_processing",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("settings", Json, nullable=False),
)

# Working hours (Set-MailboxCalendarConfiguration); a mailbox without a row has Exchange's defaults.
working_hours = Table(
    "working_hours",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("work_days", String(64), nullable=False),  # EWS day names, space-separated
    Column("start_minutes", Integer, nullable=False),
    Column("end_minutes", Integer, nullable=False),
    Column("time_zone", String(128)),  # a Windows time zone id; null: the zone of whoever asks
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("time", String(32), nullable=False),
    Column("caller", String(320), nullable=False),  # who authenticated
    Column("mailbox", String(320), nullable=False),  # whose mailbox was accessed
    Column("right", String(16), nullable=False),  # owner, impersonation or delegate
    Column("operation", String(64), nullable=False),
    Column("folder_id", BigInteger),
    Column("item_id", BigInteger),
    Column("result", String(64), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Index("ix_audit_log_mailbox", "mailbox", "time"),
    sqlite_autoincrement=True,
)

throttling_policies = Table(
    "throttling_policies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("is_default", Boolean, nullable=False, default=False),  # the organization default (at most one)
    Column("params", Json, nullable=False),  # only the parameters it sets; null is unlimited
    Column("created", String(32), nullable=False),
    sqlite_autoincrement=True,
)

throttling_assignments = Table(
    "throttling_assignments",
    metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("policy_id", ForeignKey("throttling_policies.id"), nullable=False, index=True),
)
