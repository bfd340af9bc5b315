"""UploadItems (Exchange 2010 SP1): items back from ExportItems Data. CreateNew makes a new item;
Update overwrites the item ItemId names in place (it must be in ParentFolderId, else
ErrorItemNotFound); UpdateOrCreate updates it when it is there and creates a new one otherwise.
Data that is not an export of this server is ErrorCorruptData, and nothing is stored."""

import base64
from functools import cache
from typing import Any

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import snapshot
from mailroom.store import errors as store_errors
from mailroom.store import ids
from mailroom.store.model import Folder, Mailbox, NewItem

from ..dates import parse_utc
from ..errors import EWSError, SOAPFault
from ..items import item_id_attrs
from ..schema import ITEM_ELEMENTS, Element, schema
from ..service import Operation, boolean, choice, expected_change, require
from ..xml import local, m, parse_fragment, sub, t


class UploadItems(Operation):
    name = "UploadItems"
    min_version = "Exchange2010_SP1"

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()

        def one(node: etree._Element, msg: etree._Element) -> None:
            action = choice(node, "CreateAction", "CreateActionType")
            if action is None:
                raise SOAPFault("ErrorSchemaValidation", "An uploaded item needs a CreateAction.")
            mailbox, folder = self._parent(require(node, t("ParentFolderId")))
            new = _data(require(node, t("Data")).text)
            if node.get("IsAssociated") is not None:
                new.props["IsAssociated"] = boolean(node.get("IsAssociated"), "IsAssociated")
            target = None if action == "CreateNew" else self._target(node.find(t("ItemId")), mailbox, folder)
            if target is None and action == "Update":
                raise EWSError("ErrorItemNotFound", "The item to update is not in the parent folder.")
            items = self.ctx.store.items
            item = items.create(mailbox, folder.id, new) if target is None else items.replace(mailbox, target, new)
            sub(msg, m("ItemId"), **item_id_attrs(mailbox, item))

        self.each(messages, list(require(request, m("Items"))), one)
        return root

    def _parent(self, el: etree._Element) -> tuple[Mailbox, Folder]:
        mailbox, row_id = self.decode_id(el.get("Id") or "", ids.KIND_FOLDER)
        try:
            folder = self.ctx.store.folders.get(mailbox, row_id, with_extended=False)
        except store_errors.NotFound as exc:
            raise EWSError("ErrorParentFolderNotFound") from exc
        self.authorize(mailbox, folder.id, Access.CREATE)
        return mailbox, folder

    def _target(self, id_el: etree._Element | None, mailbox: Mailbox, folder: Folder) -> int | None:
        """The row of the item to overwrite: the one ItemId names, if it is in ``folder``."""
        if id_el is None:
            return None
        owner, row_id = self.item_row(id_el.get("Id") or "", Access.EDIT)
        expected_change(id_el.get("ChangeKey"))
        found = self.ctx.store.items.get_many(owner, [row_id], body=False, attachments=False, with_extended=False)[0]
        return row_id if found is not None and owner.id == mailbox.id and found.folder_id == folder.id else None


def _data(text: str | None) -> NewItem:
    try:
        new = snapshot.load(base64.b64decode("".join((text or "").split()), validate=True))
    except ValueError as exc:
        raise EWSError("ErrorCorruptData", "The Data is not an item exported from this server.") from exc
    _check(new)
    return new


def _check(new: NewItem) -> None:
    """Every property has the form the item codec renders: Data comes from the client and may be
    made up. Attached items are checked the same way."""
    if not isinstance(new.props.get("ItemClass", ""), str) or len(new.props.get("ItemClass", "")) > 255:
        raise EWSError("ErrorCorruptData", "The item data has an invalid ItemClass.")
    for name, value in new.props.items():
        element = _elements().get(name)
        if value is not None and element is not None and not _fits(element, value):
            raise EWSError("ErrorCorruptData", f"The item data has an invalid {name}.")
    for att in new.attachments:
        if att.kind == "item":
            _check(snapshot.load(att.content))


@cache
def _elements() -> dict[str, Element]:
    """Every item property by element name (a name means the same on every item type)."""
    found: dict[str, Element] = {}
    for type_name in ITEM_ELEMENTS.values():
        for element in schema().elements(type_name):
            found.setdefault(element.name, element)
    return found


def _fits(element: Element, value: Any) -> bool:
    if element.kind == "list":
        return isinstance(value, list)
    if not element.simple:
        try:
            return isinstance(value, str) and local(parse_fragment(value).tag) == element.name
        except etree.XMLSyntaxError:
            return False
    if element.kind == "bool":
        return isinstance(value, bool)
    if element.kind in ("int", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if element.kind == "datetime":
        try:
            return isinstance(value, str) and parse_utc(value) is not None
        except ValueError:
            return False
    return isinstance(value, str)
