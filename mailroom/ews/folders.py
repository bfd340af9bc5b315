"""Folders in and out of XML."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree

from mailroom.access.identity import DELEGATE
from mailroom.access.permissions import Access, Right
from mailroom.store import Store, ids
from mailroom.store.model import ExtendedValue, Folder, Mailbox

from .errors import EWSError, SOAPFault
from .extended import ExtendedField, field_for_stored, parse_property, property_element
from .paths import Shape
from .permissions import OWNER_RIGHTS, folder_effective_rights, render_set
from .schema import FOLDER_ELEMENTS, schema
from .xml import bool_text, local, m, sub, t

if TYPE_CHECKING:
    from .service import Operation

DEFAULT_CLASS = {"Folder": "IPF.Note", "CalendarFolder": "IPF.Appointment", "ContactsFolder": "IPF.Contact",
                 "TasksFolder": "IPF.Task", "SearchFolder": "IPF.Note"}
_DEFAULT_SHAPE = {"FolderId", "DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount",
                  "DistinguishedFolderId"}
_ALL_SHAPE = _DEFAULT_SHAPE | {"ParentFolderId", "FolderClass", "EffectiveRights", "PermissionSet"}
READ_ONLY = frozenset({"FolderId", "ParentFolderId", "TotalCount", "ChildFolderCount", "UnreadCount",
                       "EffectiveRights", "DistinguishedFolderId", "ManagedFolderInformation"})
# Where each DisposalType puts what it deletes: the dumpster (Recoverable Items), Deleted Items,
# or nowhere (HardDelete removes it for good).
_DISPOSAL = {"HardDelete": None, "SoftDelete": "recoverableitemsdeletions", "MoveToDeletedItems": "deleteditems"}


def element_name(folder: Folder) -> str:
    cls = folder.folder_class or ""
    if cls.startswith("IPF.Appointment"):
        return "CalendarFolder"
    if cls.startswith("IPF.Contact"):
        return "ContactsFolder"
    if cls.startswith("IPF.Task"):
        return "TasksFolder"
    return "Folder"


def _rights_template(folder: bool) -> etree._Element:
    rights = etree.Element(t("EffectiveRights"))
    for name in ("CreateAssociated", "CreateContents", "CreateHierarchy", "Delete", "Modify", "Read"):
        sub(rights, t(name), bool_text(folder or name not in ("CreateAssociated", "CreateContents",
                                                             "CreateHierarchy")))
    sub(rights, t("ViewPrivateItems"), "true")
    return rights


# The owner's rights, built once and copied into each response.
_RIGHTS = {True: _rights_template(True), False: _rights_template(False)}


def effective_rights(parent: etree._Element, folder: bool) -> None:
    parent.append(copy.copy(_RIGHTS[folder]))


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who a folder is rendered for: their rights on it (EffectiveRights), and the store to read
    its PermissionSet from (None where the requested version has no PermissionSet)."""

    rights: Right = OWNER_RIGHTS
    store: Store | None = None
    view_private: bool = True


def viewer(op: Operation, mailbox: Mailbox, folder: Folder) -> Viewer:
    """Whom ``op`` renders the folder for: the owner (or whoever acts as the owner), or a delegate
    with the rights its folder permissions give."""
    store = op.ctx.store if op.ctx.at_least("Exchange2007_SP1") else None
    if op.ctx.identity.right_over(mailbox) != DELEGATE:
        return Viewer(store=store)
    return Viewer(op.rights_on(folder.id), store, not op.ctx.hides_private(mailbox))


def render(parent: etree._Element, mailbox: Mailbox, folder: Folder, shape: Shape,
           viewer: Viewer = Viewer()) -> etree._Element:
    """Append the folder's element, with the properties the shape asks for, in schema order."""
    name = element_name(folder)
    node = sub(parent, t(name))
    wanted = {"FolderId"} if shape.base == "IdOnly" else set(_ALL_SHAPE if shape.base == "AllProperties"
                                                             else _DEFAULT_SHAPE)
    wanted |= shape.fields
    values: dict[str, Any] = {
        "FolderClass": folder.folder_class, "DisplayName": folder.display_name,
        "TotalCount": str(folder.total_count), "ChildFolderCount": str(folder.child_folder_count),
        "UnreadCount": str(folder.unread_count), "DistinguishedFolderId": folder.distinguished_id,
    }
    stored = {e.key: e for e in folder.extended}
    for element in schema().elements(FOLDER_ELEMENTS[name]):
        key = element.name
        if key == "ExtendedProperty":
            for ext in shape.extended:
                if ext.key in stored:
                    property_element(node, ext, stored[ext.key])
            continue
        if key not in wanted:
            continue
        if key == "FolderId":
            sub(node, t("FolderId"), Id=ids.folder_id(mailbox.guid, folder.id),
                ChangeKey=ids.change_key(ids.CHANGEKEY_FOLDER, mailbox.database_guid, folder.change_number))
        elif key == "ParentFolderId":
            if folder.parent_id is not None:
                sub(node, t("ParentFolderId"), Id=ids.folder_id(mailbox.guid, folder.parent_id))
        elif key == "EffectiveRights":
            if viewer.rights == OWNER_RIGHTS:
                effective_rights(node, folder=True)
            else:
                folder_effective_rights(node, viewer.rights, viewer.view_private)
        elif key == "PermissionSet":
            if viewer.store is not None:
                render_set(node, viewer.store, viewer.store.folders.permissions(mailbox, folder.id),
                           name == "CalendarFolder")
        elif values.get(key) is not None:
            sub(node, t(key), values[key])
    return node


def parse_new(node: etree._Element) -> tuple[str, str | None, list[ExtendedValue]]:
    """A Folder/CalendarFolder/... element of CreateFolder: display name, class, extended properties."""
    kind = local(node.tag)
    if kind not in FOLDER_ELEMENTS:
        raise EWSError("ErrorInvalidRequest", f"{kind} is not a folder type.")
    display_name = None
    folder_class = DEFAULT_CLASS.get(kind)
    ext: list[ExtendedValue] = []
    for child in node:
        name = local(child.tag)
        if name == "DisplayName":
            display_name = (child.text or "").strip()
        elif name == "FolderClass":
            folder_class = (child.text or "").strip() or None
        elif name == "ExtendedProperty":
            ext.append(parse_property(child)[1])
        elif name in READ_ONLY:
            raise EWSError("ErrorInvalidPropertySet", f"{name} cannot be set.")
    if not display_name:
        raise EWSError("ErrorInvalidRequest", "A folder needs a DisplayName.")
    return display_name, folder_class, ext


def stored_fields(folder: Folder) -> list[tuple[ExtendedField, ExtendedValue]]:
    return [(field_for_stored(v), v) for v in folder.extended]


def render_id(msg: etree._Element, mailbox: Mailbox, folder: Folder) -> None:
    """The ``m:Folders`` answer of CreateFolder, UpdateFolder, MoveFolder and CopyFolder: the
    folder's id with its new ChangeKey."""
    render(sub(msg, m("Folders")), mailbox, folder, Shape("IdOnly"))


def target_folder(resolve: Callable[[etree._Element, Access], tuple[Mailbox, Folder]], holder: etree._Element,
                  missing: str, need: Access) -> tuple[Mailbox, Folder]:
    """The folder a ParentFolderId or ToFolderId names, checked for ``need``; one that does not
    exist is reported with ``missing`` (ErrorParentFolderNotFound, ErrorToFolderNotFound)."""
    if len(holder) != 1:
        raise SOAPFault("ErrorSchemaValidation", f"{local(holder.tag)} needs exactly one folder id.")
    try:
        return resolve(holder[0], need)
    except EWSError as err:
        if err.code != "ErrorFolderNotFound":
            raise
        raise EWSError(missing, err.message) from err


def disposal(request: etree._Element) -> str:
    """The request's required DeleteType attribute (DeleteFolder, EmptyFolder, DeleteItem)."""
    value = request.get("DeleteType") or ""
    if value not in _DISPOSAL:
        raise SOAPFault("ErrorSchemaValidation", f"DeleteType {value!r} is not valid.")
    return value


def trash_id(store: Store, mailbox: Mailbox, delete_type: str, source: int | None = None) -> int | None:
    """The folder a delete of ``delete_type`` moves things to; None when they are removed for good.
    What is deleted to Deleted Items from a folder already in there (``source``) goes to the
    dumpster instead, as on Exchange."""
    name = _DISPOSAL[delete_type]
    if name is None:
        return None
    known = store.folders.distinguished_ids(mailbox)
    if name == "deleteditems" and source is not None and _inside(store, mailbox, source, known[name]):
        name = _DISPOSAL["SoftDelete"]
    return known[name]


def _inside(store: Store, mailbox: Mailbox, folder_id: int, ancestor: int) -> bool:
    below, _ = store.folders.find(mailbox, ancestor, deep=True)
    return folder_id == ancestor or any(f.id == folder_id for f in below)
