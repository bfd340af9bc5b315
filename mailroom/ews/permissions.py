"""PermissionSet / CalendarPermissionSet in and out of XML, and EffectiveRights from the caller's
rights on a folder."""

from __future__ import annotations

import enum
from typing import TypeVar

from lxml import etree

from mailroom.access.permissions import (
    ANONYMOUS,
    DEFAULT,
    DEFAULT_CALENDAR_RIGHTS,
    DEFAULT_RIGHTS,
    CustomRights,
    ItemScope,
    Permission,
    Principal,
    ReadAccess,
    Right,
    level_of,
    level_rights,
)
from mailroom.store import Store
from mailroom.store.directory import mailbox_sid
from mailroom.store.model import Mailbox

from .errors import EWSError, SOAPFault
from .service import boolean
from .xml import bool_text, local, sub, t

E = TypeVar("E", bound=enum.Enum)
OWNER_RIGHTS = level_rights("Owner", calendar=True)
_FLAGS = (("CanCreateItems", "can_create_items"), ("CanCreateSubFolders", "can_create_subfolders"),
          ("IsFolderOwner", "is_folder_owner"), ("IsFolderVisible", "is_folder_visible"),
          ("IsFolderContact", "is_folder_contact"))


_EFFECTIVE = ("CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read", "ViewPrivateItems")


def rights_element(parent: etree._Element, granted: dict[str, bool]) -> None:
    """An EffectiveRights element: each right in schema order, true where ``granted`` says so."""
    node = sub(parent, t("EffectiveRights"))
    for name in _EFFECTIVE:
        sub(node, t(name), bool_text(granted.get(name, False)))


def folder_effective_rights(parent: etree._Element, rights: Right, view_private: bool) -> None:
    """A folder's EffectiveRights for a delegate holding ``rights`` on it (the owner's are fixed:
    see ``folders.effective_rights``)."""
    owner = Right.FOLDER_OWNER in rights
    rights_element(parent, {"CreateAssociated": owner, "CreateContents": Right.CREATE in rights,
                            "CreateHierarchy": Right.CREATE_SUBFOLDER in rights, "Delete": owner, "Modify": owner,
                            "Read": Right.FOLDER_VISIBLE in rights, "ViewPrivateItems": view_private})


def render_set(parent: etree._Element, store: Store, entries: list[Permission], calendar: bool) -> None:
    """The folder's PermissionSet (CalendarPermissionSet for calendars): Default and Anonymous
    first (their defaults when not stored), then each user."""
    stored = {e.principal: e.rights for e in entries}
    default = DEFAULT_CALENDAR_RIGHTS if calendar else DEFAULT_RIGHTS
    users = [e for e in entries if e.principal.mailbox_id is not None]
    mailboxes = store.directory.mailboxes_by_id([e.principal.mailbox_id for e in users if e.principal.mailbox_id])
    node = sub(parent, t("PermissionSet"))
    holder = sub(node, t("CalendarPermissions" if calendar else "Permissions"))
    for principal in (DEFAULT, ANONYMOUS):
        _render_one(holder, calendar, principal, stored.get(principal, default if principal == DEFAULT
                                                            else DEFAULT_RIGHTS), None)
    for entry in users:
        found = mailboxes.get(entry.principal.mailbox_id or 0)
        if found is not None:
            _render_one(holder, calendar, entry.principal, entry.rights, found)


def _render_one(holder: etree._Element, calendar: bool, principal: Principal, rights: Right,
                mailbox: Mailbox | None) -> None:
    node = sub(holder, t("CalendarPermission" if calendar else "Permission"))
    user = sub(node, t("UserId"))
    if mailbox is not None:
        sub(user, t("SID"), mailbox_sid(mailbox.guid))
        sub(user, t("PrimarySmtpAddress"), mailbox.address)
        sub(user, t("DisplayName"), mailbox.display_name)
    else:
        sub(user, t("DistinguishedUser"), principal.distinguished)
    custom = CustomRights.of(rights, calendar)
    for element, attribute in _FLAGS:
        sub(node, t(element), bool_text(getattr(custom, attribute)))
    sub(node, t("EditItems"), custom.edit_items.value)
    sub(node, t("DeleteItems"), custom.delete_items.value)
    sub(node, t("ReadItems"), custom.read_items.value)
    sub(node, t("CalendarPermissionLevel" if calendar else "PermissionLevel"), level_of(rights, calendar))


def parse_set(node: etree._Element, store: Store, calendar: bool) -> list[Permission]:
    """The entries a PermissionSet of CreateFolder/UpdateFolder asks for. Unknown users get
    ErrorInvalidUserInfo, a user named twice ErrorDuplicateUserIdsSpecified, a level that does not
    fit the folder ErrorInvalidPermissionSettings."""
    holder = node.find(t("CalendarPermissions" if calendar else "Permissions"))
    if holder is None:
        raise EWSError("ErrorInvalidPermissionSettings",
                       f"A {'calendar' if calendar else 'non-calendar'} folder takes "
                       f"{'CalendarPermissions' if calendar else 'Permissions'}.")
    found: list[Permission] = []
    for entry in holder:
        principal = _principal(entry.find(t("UserId")), store)
        if any(p.principal == principal for p in found):
            raise EWSError("ErrorDuplicateUserIdsSpecified", "A user is named more than once in the permission set.")
        found.append(Permission(principal, _rights(entry, calendar)))
    return found


def _principal(user: etree._Element | None, store: Store) -> Principal:
    if user is None:
        raise EWSError("ErrorInvalidUserInfo", "A permission needs a UserId.")
    distinguished = (user.findtext(t("DistinguishedUser")) or "").strip()
    if distinguished in ("Default", "Anonymous"):
        return DEFAULT if distinguished == "Default" else ANONYMOUS
    mailbox = resolve_user(user, store)
    if mailbox is None:
        raise EWSError("ErrorInvalidUserInfo", "The user of a permission is not a mailbox of this server.")
    return Principal(mailbox.id)


def resolve_user(user: etree._Element, store: Store) -> Mailbox | None:
    """The mailbox a UserId names by PrimarySmtpAddress or SID, if any."""
    address = (user.findtext(t("PrimarySmtpAddress")) or "").strip()
    if address:
        return store.directory.mailbox_by_address(address)
    sid = (user.findtext(t("SID")) or "").strip()
    return store.directory.mailbox_by_sid(sid) if sid else None


def _rights(entry: etree._Element, calendar: bool) -> Right:
    level = (entry.findtext(t("CalendarPermissionLevel" if calendar else "PermissionLevel")) or "").strip()
    if level and level != "Custom":
        try:
            return level_rights(level, calendar)
        except KeyError as exc:
            raise EWSError("ErrorInvalidPermissionSettings", f"{level} is not a level for this folder.") from exc
    values: dict[str, object] = {}
    for child in entry:
        name = local(child.tag)
        attribute = dict(_FLAGS).get(name)
        if attribute is not None:
            values[attribute] = boolean(child.text, name)
        elif name in ("EditItems", "DeleteItems"):
            values["edit_items" if name == "EditItems" else "delete_items"] = _enum(ItemScope, child.text, name)
        elif name == "ReadItems":
            read = _enum(ReadAccess, child.text, name)
            if not calendar and read not in (ReadAccess.NONE, ReadAccess.FULL_DETAILS):
                raise EWSError("ErrorInvalidPermissionSettings", f"ReadItems {read.value} is for calendars only.")
            values["read_items"] = read
    return CustomRights(**values).rights(calendar)  # type: ignore[arg-type]


def _enum(kind: type[E], text: str | None, what: str) -> E:
    try:
        return kind((text or "").strip())
    except ValueError as exc:
        raise SOAPFault("ErrorSchemaValidation", f"{what}: {text!r} is not a valid value.") from exc
