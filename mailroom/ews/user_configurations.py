"""User configuration objects ([MS-OXWSUSRCFG]): the named settings clients keep on a folder
(Outlook's and OWA's CategoryList, WorkHours, view settings...). As on Exchange, each is an
associated (FAI) item of the folder whose item class is ``IPM.Configuration.<Name>``; its
Dictionary, XmlData and BinaryData are kept as properties of that item.

A dictionary is stored entry by entry, in order (each key and value a type and its values as
text), every value checked against its type and written as Exchange writes that type: Booleans
as true/false, integers in decimal, DateTimes in UTC (a time without a zone in the request's
TimeZoneContext), byte arrays in canonical base64; strings exactly as given."""

from __future__ import annotations

import base64
import binascii
from datetime import tzinfo
from typing import Any

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import config_items
from mailroom.store.model import Folder, Item, Mailbox

from .dates import to_utc_text
from .errors import EWSError
from .items import item_id_attrs
from .service import Operation, require
from .xml import local, m, sub, t

CLASS_PREFIX = "IPM.Configuration."
MAX_NAME = 255 - len(CLASS_PREFIX)  # PR_MESSAGE_CLASS holds at most 255 characters
PROPERTIES = ("Dictionary", "XmlData", "BinaryData")
_STORED = {name: f"_UserConfiguration{name}" for name in PROPERTIES}
_INTEGERS = {"Byte": (0, 2**8 - 1), "Integer32": (-2**31, 2**31 - 1), "UnsignedInteger32": (0, 2**32 - 1),
             "Integer64": (-2**63, 2**63 - 1), "UnsignedInteger64": (0, 2**64 - 1)}
_SCALARS = ("DateTime", "Boolean", "String", *_INTEGERS)  # what a key may be: no arrays
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

Entry = list[Any]  # [key type, key values, value type or None (nil), value values]


def named(op: Operation, name_el: etree._Element, need: Access) -> tuple[Mailbox, Folder, str]:
    """The folder and name a UserConfigurationName element gives, the folder checked for ``need``."""
    name = name_el.get("Name") or ""
    if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
        raise EWSError("ErrorInvalidRequest", f"{name!r} is not a valid user configuration name "
                                              f"(1 to {MAX_NAME} printable characters).")
    folder_el = next(name_el.iterchildren(etree.Element), None)
    if folder_el is None:
        raise EWSError("ErrorInvalidRequest", "A user configuration name needs its folder.")
    if local(folder_el.tag) == "AddressListId":
        raise EWSError("ErrorInvalidRequest", "User configuration objects belong to folders, not address lists.")
    mailbox, folder = op.folder_from(folder_el, need)
    return mailbox, folder, name


def find(op: Operation, mailbox: Mailbox, folder: Folder, name: str) -> Item | None:
    """The folder's configuration object of that name, if there is one."""
    return config_items.find(op.ctx.store, mailbox, CLASS_PREFIX + name, folder.id)


def existing(op: Operation, mailbox: Mailbox, folder: Folder, name: str) -> Item:
    item = find(op, mailbox, folder, name)
    if item is None:
        raise EWSError("ErrorItemNotFound", f"The folder has no user configuration object named {name}.")
    return item


def read_properties(config: etree._Element, tz: tzinfo) -> dict[str, Any]:
    """The stored form of the Dictionary, XmlData and BinaryData a UserConfiguration element gives
    (only those it gives); ErrorInvalidRequest for a value its type cannot hold."""
    props: dict[str, Any] = {}
    for child in config.iterchildren(etree.Element):
        name = local(child.tag)
        if name == "Dictionary":
            props[_STORED[name]] = _dictionary(child, tz)
        elif name in ("XmlData", "BinaryData"):
            props[_STORED[name]] = base64.b64encode(_base64(child.text, name)).decode()
    return props


def write(op: Operation, parent: etree._Element, mailbox: Mailbox, folder: Folder, item: Item,
          wanted: set[str]) -> None:
    """A UserConfiguration element with the properties ``wanted`` (Id, Dictionary, XmlData, BinaryData)."""
    config = sub(parent, m("UserConfiguration"))
    name_el = sub(config, t("UserConfigurationName"), Name=item.item_class.removeprefix(CLASS_PREFIX))
    op.folder_id_element(name_el, mailbox, folder)
    if "Id" in wanted:
        sub(config, t("ItemId"), **item_id_attrs(mailbox, item))
    entries = item.props.get(_STORED["Dictionary"])
    if "Dictionary" in wanted and entries is not None:
        dictionary = sub(config, t("Dictionary"))
        for key_type, keys, value_type, values in entries:
            entry = sub(dictionary, t("DictionaryEntry"))
            _object(sub(entry, t("DictionaryKey")), key_type, keys)
            value = sub(entry, t("DictionaryValue"))
            if value_type is None:
                value.set(_XSI_NIL, "true")
            else:
                _object(value, value_type, values)
    for name in ("XmlData", "BinaryData"):
        if name in wanted and item.props.get(_STORED[name]) is not None:
            sub(config, t(name), item.props[_STORED[name]])


def wanted_properties(text: str | None) -> set[str]:
    """UserConfigurationProperties (a list of Id, Dictionary, XmlData, BinaryData, All) as a set."""
    given = set((text or "").split())
    if not given or not given <= {"Id", "All", *PROPERTIES}:
        raise EWSError("ErrorInvalidRequest", f"{text!r} is not a list of user configuration properties.")
    return {"Id", *PROPERTIES} if "All" in given else given


def _object(parent: etree._Element, kind: str, values: list[str]) -> None:
    sub(parent, t("Type"), kind)
    for value in values:
        sub(parent, t("Value"), value)


def _dictionary(dictionary: etree._Element, tz: tzinfo) -> list[Entry]:
    entries: list[Entry] = []
    keys: set[tuple[str, tuple[str, ...]]] = set()
    for entry in dictionary.iterchildren(t("DictionaryEntry")):
        key_type, key_values = _typed(require(entry, t("DictionaryKey")), tz)
        if key_type not in _SCALARS:
            raise EWSError("ErrorInvalidRequest", f"A dictionary key cannot be a {key_type}.")
        if (key_type, tuple(key_values)) in keys:
            raise EWSError("ErrorInvalidRequest", f"The dictionary has the key {key_values[0]!r} twice.")
        keys.add((key_type, tuple(key_values)))
        value_el = require(entry, t("DictionaryValue"))
        value_type, values = (None, []) if value_el.get(_XSI_NIL) in ("true", "1") else _typed(value_el, tz)
        entries.append([key_type, key_values, value_type, values])
    return entries


def _typed(node: etree._Element, tz: tzinfo) -> tuple[str, list[str]]:
    """A dictionary object's type and its values, each checked against the type and normalised."""
    kind = (require(node, t("Type")).text or "").strip()
    values = [value.text or "" for value in node.iterchildren(t("Value"))]
    if not values:
        raise EWSError("ErrorInvalidRequest", f"A dictionary {kind} has no Value.")
    if len(values) > 1 and kind != "StringArray":
        raise EWSError("ErrorInvalidRequest", f"A dictionary {kind} has one Value.")
    return kind, [_normalised(kind, value, tz) for value in values]


def _normalised(kind: str, value: str, tz: tzinfo) -> str:
    if kind in ("String", "StringArray"):
        return value
    if kind == "Boolean":
        if value.strip() not in ("true", "false", "1", "0"):
            raise EWSError("ErrorInvalidRequest", f"{value!r} is not a Boolean.")
        return "true" if value.strip() in ("true", "1") else "false"
    if kind == "DateTime":
        try:
            return to_utc_text(value, tz)
        except EWSError as exc:
            raise EWSError("ErrorInvalidRequest", f"{value!r} is not a DateTime.") from exc
    if kind == "ByteArray":
        return base64.b64encode(_base64(value, "ByteArray")).decode()
    if kind not in _INTEGERS:
        raise EWSError("ErrorInvalidRequest", f"{kind!r} is not a dictionary object type.")
    low, high = _INTEGERS[kind]
    try:
        number = int(value.strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise EWSError("ErrorInvalidRequest", f"{value!r} is not a {kind}.")
    return str(number)


def _base64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EWSError("ErrorInvalidRequest", f"{what} is not base64.") from exc
