"""Folder permissions as Exchange keeps them: the member rights of [MS-OXCPERM] (PidTagMemberRights),
the permission levels EWS names (PermissionLevel / CalendarPermissionLevel), and what each kind of
access needs. Protocol-neutral: EWS renders and parses these; the store keeps ``Right`` as an integer."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Right(enum.Flag):
    """One folder permission entry's rights, with the MAPI bit values so stored numbers mean what
    they mean in Exchange."""

    NONE = 0
    READ_ANY = 0x1
    CREATE = 0x2
    EDIT_OWNED = 0x8
    DELETE_OWNED = 0x10
    EDIT_ANY = 0x20
    DELETE_ANY = 0x40
    CREATE_SUBFOLDER = 0x80
    FOLDER_OWNER = 0x100
    FOLDER_CONTACT = 0x200
    FOLDER_VISIBLE = 0x400
    FREEBUSY_SIMPLE = 0x800
    FREEBUSY_DETAILED = 0x1000


FREEBUSY = Right.FREEBUSY_SIMPLE | Right.FREEBUSY_DETAILED
_R = Right
_AUTHOR = _R.CREATE | _R.READ_ANY | _R.FOLDER_VISIBLE | _R.EDIT_OWNED | _R.DELETE_OWNED
_EDITOR = _AUTHOR | _R.EDIT_ANY | _R.DELETE_ANY

# The levels of the EWS Managed API's FolderPermission defaults, in PermissionLevelType order.
LEVELS: dict[str, Right] = {
    "None": _R.NONE,
    "Owner": _EDITOR | _R.CREATE_SUBFOLDER | _R.FOLDER_OWNER | _R.FOLDER_CONTACT,
    "PublishingEditor": _EDITOR | _R.CREATE_SUBFOLDER,
    "Editor": _EDITOR,
    "PublishingAuthor": _AUTHOR | _R.CREATE_SUBFOLDER,
    "Author": _AUTHOR,
    "NoneditingAuthor": _R.CREATE | _R.READ_ANY | _R.FOLDER_VISIBLE | _R.DELETE_OWNED,
    "Reviewer": _R.READ_ANY | _R.FOLDER_VISIBLE,
    "Contributor": _R.CREATE | _R.FOLDER_VISIBLE,
}
# Calendar folders add two levels that show free/busy only.
CALENDAR_LEVELS: dict[str, Right] = {**LEVELS, "FreeBusyTimeOnly": _R.FREEBUSY_SIMPLE,
                                     "FreeBusyTimeAndSubjectAndLocation": FREEBUSY}

# What a principal without an entry of its own gets (the "Default" entry when there is none):
# nothing, except the free/busy times of calendars, as on Exchange.
DEFAULT_RIGHTS = _R.NONE
DEFAULT_CALENDAR_RIGHTS = _R.FREEBUSY_SIMPLE


def calendar_rights(rights: Right) -> Right:
    """A level's rights on a calendar: reading every item also shows free/busy in full."""
    return rights | FREEBUSY if Right.READ_ANY in rights else rights


def level_rights(level: str, calendar: bool) -> Right:
    """The rights a named level stands for (KeyError for Custom or an unknown name)."""
    return calendar_rights(CALENDAR_LEVELS[level]) if calendar else LEVELS[level]


def level_of(rights: Right, calendar: bool) -> str:
    """The level these rights amount to, or "Custom"."""
    if not calendar:
        rights &= ~FREEBUSY
    for name, preset in (CALENDAR_LEVELS if calendar else LEVELS).items():
        if (calendar_rights(preset) if calendar else preset) == rights:
            return name
    return "Custom"


class ItemScope(enum.Enum):
    """EditItems / DeleteItems (PermissionActionType)."""

    NONE = "None"
    OWNED = "Owned"
    ALL = "All"


class ReadAccess(enum.Enum):
    """ReadItems (PermissionReadAccessType; calendars add the free/busy values)."""

    NONE = "None"
    TIME_ONLY = "TimeOnly"
    TIME_AND_SUBJECT_AND_LOCATION = "TimeAndSubjectAndLocation"
    FULL_DETAILS = "FullDetails"


@dataclass(frozen=True, slots=True)
class CustomRights:
    """The individual rights of one EWS Permission element."""

    can_create_items: bool = False
    can_create_subfolders: bool = False
    is_folder_owner: bool = False
    is_folder_visible: bool = False
    is_folder_contact: bool = False
    edit_items: ItemScope = ItemScope.NONE
    delete_items: ItemScope = ItemScope.NONE
    read_items: ReadAccess = ReadAccess.NONE

    def rights(self, calendar: bool) -> Right:
        found = Right.NONE
        for flag, on in ((_R.CREATE, self.can_create_items), (_R.CREATE_SUBFOLDER, self.can_create_subfolders),
                         (_R.FOLDER_OWNER, self.is_folder_owner), (_R.FOLDER_VISIBLE, self.is_folder_visible),
                         (_R.FOLDER_CONTACT, self.is_folder_contact)):
            if on:
                found |= flag
        found |= _scope_rights(self.edit_items, _R.EDIT_OWNED, _R.EDIT_ANY)
        found |= _scope_rights(self.delete_items, _R.DELETE_OWNED, _R.DELETE_ANY)
        read = {ReadAccess.NONE: _R.NONE, ReadAccess.TIME_ONLY: _R.FREEBUSY_SIMPLE,
                ReadAccess.TIME_AND_SUBJECT_AND_LOCATION: FREEBUSY, ReadAccess.FULL_DETAILS: _R.READ_ANY}
        found |= read[self.read_items]
        return calendar_rights(found) if calendar else found & ~FREEBUSY

    @classmethod
    def of(cls, rights: Right, calendar: bool) -> CustomRights:
        if Right.READ_ANY in rights:
            read = ReadAccess.FULL_DETAILS
        elif calendar and Right.FREEBUSY_DETAILED in rights:
            read = ReadAccess.TIME_AND_SUBJECT_AND_LOCATION
        elif calendar and Right.FREEBUSY_SIMPLE in rights:
            read = ReadAccess.TIME_ONLY
        else:
            read = ReadAccess.NONE
        return cls(can_create_items=Right.CREATE in rights, can_create_subfolders=Right.CREATE_SUBFOLDER in rights,
                   is_folder_owner=Right.FOLDER_OWNER in rights, is_folder_visible=Right.FOLDER_VISIBLE in rights,
                   is_folder_contact=Right.FOLDER_CONTACT in rights,
                   edit_items=_scope_of(rights, _R.EDIT_OWNED, _R.EDIT_ANY),
                   delete_items=_scope_of(rights, _R.DELETE_OWNED, _R.DELETE_ANY), read_items=read)


def _scope_rights(scope: ItemScope, owned: Right, any_: Right) -> Right:
    return {ItemScope.NONE: _R.NONE, ItemScope.OWNED: owned, ItemScope.ALL: owned | any_}[scope]


def _scope_of(rights: Right, owned: Right, any_: Right) -> ItemScope:
    return ItemScope.ALL if any_ in rights else ItemScope.OWNED if owned in rights else ItemScope.NONE


@dataclass(frozen=True, slots=True)
class Principal:
    """Whom a permission entry is for: a mailbox (``mailbox_id``), or "Default" / "Anonymous"."""

    mailbox_id: int | None = None
    distinguished: str | None = None


DEFAULT = Principal(distinguished="Default")
ANONYMOUS = Principal(distinguished="Anonymous")


@dataclass(frozen=True, slots=True)
class Permission:
    principal: Principal
    rights: Right


class Access(enum.Enum):
    """What an operation does with a folder or an item, each needing its own right."""

    SEE_FOLDER = "see the folder"
    READ = "read items"
    CREATE = "create items"
    CREATE_SUBFOLDER = "create subfolders"
    EDIT = "edit items"
    DELETE = "delete items"
    OWN_FOLDER = "change or delete the folder"


_NEEDS = {Access.SEE_FOLDER: _R.FOLDER_VISIBLE, Access.READ: _R.READ_ANY, Access.CREATE: _R.CREATE,
          Access.CREATE_SUBFOLDER: _R.CREATE_SUBFOLDER, Access.OWN_FOLDER: _R.FOLDER_OWNER}


def allows(rights: Right, access: Access, own_item: bool = False) -> bool:
    """Whether ``rights`` on a folder allow ``access``; ``own_item`` says the item was created by
    the caller (for the "Owned" edit and delete rights)."""
    if access is Access.EDIT:
        return Right.EDIT_ANY in rights or (own_item and Right.EDIT_OWNED in rights)
    if access is Access.DELETE:
        return Right.DELETE_ANY in rights or (own_item and Right.DELETE_OWNED in rights)
    return _NEEDS[access] in rights
