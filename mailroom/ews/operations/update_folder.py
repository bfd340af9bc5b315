"""UpdateFolder: set or delete a folder's DisplayName, FolderClass, PermissionSet and extended
properties. Setting the PermissionSet replaces the whole set; deleting it restores the defaults.

Folder updates are last-writer-wins in Exchange: UpdateFolder has no ConflictResolution and the
EWS Managed API's Folder.Update() offers none, so a well-formed but older ChangeKey is accepted
(a malformed one is still refused)."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store.model import ExtendedValue
from mailroom.store.permissions import is_calendar

from ..errors import EWSError, SOAPFault
from ..extended import ExtendedField, parse_property
from ..folders import render_id
from ..paths import FieldPath, Path, first_path
from ..permissions import parse_set
from ..schema import FOLDER_ELEMENTS
from ..service import Operation, expected_change, require
from ..xml import local, m, t

# Writable folder properties and the store field each one is kept in.
_FIELDS = {"DisplayName": "display_name", "FolderClass": "folder_class"}


@dataclass
class FolderChanges:
    """Everything one FolderChange asks for, applied in one store transaction."""

    values: dict[str, str | None] = field(default_factory=dict)
    set_ext: list[ExtendedValue] = field(default_factory=list)
    delete_ext: list[str] = field(default_factory=list)
    permission_set: etree._Element | None = None  # a PermissionSet to replace the folder's with
    reset_permissions: bool = False


class UpdateFolder(Operation):
    name = "UpdateFolder"

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()

        def one(change: etree._Element, msg: etree._Element) -> None:
            if len(change) == 0:
                raise SOAPFault("ErrorSchemaValidation", "FolderChange needs a FolderId or DistinguishedFolderId.")
            mailbox, folder = self.folder_from(change[0], Access.OWN_FOLDER)
            expected_change(change[0].get("ChangeKey"))
            changes = parse_changes(require(change, t("Updates")))
            perms = [] if changes.reset_permissions else None
            if changes.permission_set is not None:
                perms = parse_set(changes.permission_set, self.ctx.store, is_calendar(folder.folder_class))
            updated = self.ctx.store.folders.update(mailbox, folder.id, changes.values, changes.set_ext,
                                                    changes.delete_ext, perms=perms)
            render_id(msg, mailbox, updated)

        self.each(messages, list(require(request, m("FolderChanges"))), one)
        return root


def parse_changes(updates: etree._Element) -> FolderChanges:
    changes = FolderChanges()
    for update in updates:
        action = local(update.tag)
        path = first_path(update)
        if action == "AppendToFolderField":
            raise EWSError("ErrorInvalidPropertyAppend", "Folder properties cannot be appended to.")
        if action == "SetFolderField":
            _set(changes, path, _only_property(update, path))
        elif action == "DeleteFolderField":
            _delete(changes, path)
        else:
            raise SOAPFault("ErrorSchemaValidation", f"{action} is not a folder change.")
    return changes


def _only_property(update: etree._Element, path: Path) -> etree._Element:
    """The one property element a SetFolderField carries; it must be the one its path names."""
    holder = next((c for c in update if local(c.tag) in FOLDER_ELEMENTS), None)
    if holder is None:
        raise SOAPFault("ErrorSchemaValidation", "SetFolderField needs a folder element.")
    if isinstance(path, ExtendedField):
        wanted = "ExtendedProperty"
    elif isinstance(path, FieldPath) and (path.element in _FIELDS or path.element == "PermissionSet"):
        wanted = path.element
    else:
        raise EWSError("ErrorInvalidPropertySet", f"{_name(path)} cannot be set on a folder.")
    if len(holder) != 1 or local(holder[0].tag) != wanted:
        raise EWSError("ErrorIncorrectUpdatePropertyCount",
                       "Each change must set exactly the one property its path names.")
    return holder[0]


def _set(changes: FolderChanges, path: Path, prop: etree._Element) -> None:
    if isinstance(path, ExtendedField):
        found, value = parse_property(prop)
        if found.key != path.key:
            raise EWSError("ErrorIncorrectUpdatePropertyCount", "The extended property differs from the path.")
        changes.set_ext.append(value)
        return
    if path.element == "PermissionSet":
        changes.permission_set = prop
        return
    text = (prop.text or "").strip()
    if path.element == "DisplayName" and not text:
        raise EWSError("ErrorInvalidPropertySet", "A folder needs a DisplayName.")
    changes.values[_FIELDS[path.element]] = text or None


def _delete(changes: FolderChanges, path: Path) -> None:
    if isinstance(path, ExtendedField):
        changes.delete_ext.append(path.key)
    elif isinstance(path, FieldPath) and path.element == "FolderClass":
        changes.values["folder_class"] = None
    elif isinstance(path, FieldPath) and path.element == "PermissionSet":
        changes.reset_permissions = True
    else:
        raise EWSError("ErrorInvalidPropertyDelete", f"{_name(path)} cannot be deleted from a folder.")


def _name(path: Path) -> str:
    return path.key if isinstance(path, ExtendedField) else path.uri
