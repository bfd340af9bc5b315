"""Restriction, SortOrder and QueryString (AQS) into the store's query language."""

from __future__ import annotations

import re

from lxml import etree

from mailroom.store.query import (
    And,
    Compare,
    Contains,
    Exists,
    ExtProp,
    Filter,
    Match,
    Not,
    Or,
    Prop,
    Ref,
    Sort,
)

from .context import Context
from .dates import to_utc_text
from .errors import EWSError, SOAPFault
from .extended import ExtendedField
from .paths import FieldPath, IndexedPath, first_path
from .schema import schema
from .xml import local, t

_COMPARE = {"IsEqualTo": "eq", "IsNotEqualTo": "ne", "IsGreaterThan": "gt", "IsGreaterThanOrEqualTo": "ge",
            "IsLessThan": "lt", "IsLessThanOrEqualTo": "le"}
_FOLDER_KINDS = {"TotalCount": "int", "UnreadCount": "int", "ChildFolderCount": "int"}


def _kind(element: str, folders: bool) -> str:
    if folders:
        return _FOLDER_KINDS.get(element, "string")
    for type_name in ("MessageType", "CalendarItemType", "ContactItemType", "TaskType", "PostItemType",
                      "MeetingRequestMessageType"):
        found = schema().element(type_name, element)
        if found is not None:
            return found.kind
    return "string"


def to_ref(node: etree._Element, folders: bool) -> Ref:
    path = first_path(node)
    if isinstance(path, ExtendedField):
        return ExtProp(path.key, path.kind if path.kind != "binary" else "string")
    if isinstance(path, IndexedPath):
        raise EWSError("ErrorUnsupportedPathForQuery", f"{path.uri} cannot be used in a restriction.")
    assert isinstance(path, FieldPath)
    return Prop(path.element, _kind(path.element, folders))  # type: ignore[arg-type]


def _constant(value: str, ref: Ref, ctx: Context) -> object:
    kind = ref.kind
    try:
        if kind == "bool":
            return value.strip().lower() in ("true", "1")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError as exc:
        raise EWSError("ErrorInvalidValueForProperty", f"{value!r} is not valid for this property.") from exc
    if kind == "datetime":
        return to_utc_text(value, ctx.tz)
    return value


def parse_restriction(node: etree._Element | None, ctx: Context, folders: bool = False) -> Filter | None:
    if node is None or len(node) == 0:
        return None
    return _expr(node[0], ctx, folders)


def _expr(node: etree._Element, ctx: Context, folders: bool) -> Filter:
    name = local(node.tag)
    if name == "And":
        return And(tuple(_expr(c, ctx, folders) for c in node))
    if name == "Or":
        return Or(tuple(_expr(c, ctx, folders) for c in node))
    if name == "Not":
        if len(node) != 1:
            raise SOAPFault("ErrorSchemaValidation", "Not takes exactly one expression.")
        return Not(_expr(node[0], ctx, folders))
    if name == "Exists":
        return Exists(to_ref(node, folders))
    if name in _COMPARE:
        ref = to_ref(node, folders)
        other = node.find(t("FieldURIOrConstant"))
        if other is None or len(other) == 0:
            raise SOAPFault("ErrorSchemaValidation", f"{name} needs FieldURIOrConstant.")
        target = other[0]
        if local(target.tag) == "Constant":
            return Compare(ref, _COMPARE[name], _constant(target.get("Value") or "", ref, ctx))  # type: ignore[arg-type]
        return Compare(ref, _COMPARE[name], to_ref(other, folders))  # type: ignore[arg-type]
    if name == "Contains":
        ref = to_ref(node, folders)
        constant = node.find(t("Constant"))
        if constant is None:
            raise SOAPFault("ErrorSchemaValidation", "Contains needs a Constant.")
        mode = node.get("ContainmentMode") or "FullString"
        comparison = node.get("ContainmentComparison") or "Exact"
        return Contains(ref, constant.get("Value") or "", mode,  # type: ignore[arg-type]
                        ignore_case="IgnoreCase" in comparison or "Loose" in comparison)
    if name == "Excludes":
        raise EWSError("ErrorUnsupportedQueryFilter", "Excludes (bitmask) restrictions are not supported.")
    raise SOAPFault("ErrorSchemaValidation", f"{name} is not a search expression.")


def parse_sort(node: etree._Element | None, folders: bool = False) -> list[Sort]:
    if node is None:
        return []
    sorts = []
    for order in node.findall(t("FieldOrder")):
        sorts.append(Sort(to_ref(order, folders), (order.get("Order") or "Ascending") == "Descending"))
    return sorts


# AQS property keywords ([MS-OXWSSRCH] / Outlook search syntax) for the simple forms clients send.
_AQS_PROPS = {
    "subject": (Prop("Subject"), "contains"), "from": (Prop("From"), "contains"),
    "to": (Prop("DisplayTo"), "contains"), "cc": (Prop("DisplayCc"), "contains"),
    "body": (Prop("Body"), "contains"), "category": (Prop("Categories", "list"), "contains"),
    "hasattachment": (Prop("HasAttachments", "bool"), "bool"), "hasattachments": (Prop("HasAttachments", "bool"), "bool"),
    "isread": (Prop("IsRead", "bool"), "bool"), "kind": (Prop("ItemClass"), "contains"),
    "received": (Prop("DateTimeReceived", "datetime"), "date"), "sent": (Prop("DateTimeSent", "datetime"), "date"),
}
_TOKEN = re.compile(r'(\w+):\s*(>=|<=|>|<|=)?\s*("[^"]*"|\S+)|"([^"]*)"|(\()|(\))|(\S+)')


def parse_query_string(text: str, ctx: Context) -> Filter | None:
    """Parse simple AQS: words and quoted phrases (free text), ``prop:value`` pairs, AND/OR/NOT."""
    parts: list[Filter] = []
    joiner = "AND"
    negate = False
    groups: list[list[Filter]] = []
    for match in _TOKEN.finditer(text.strip()):
        key, op, value, phrase, _open, _close, word = match.groups()
        if word and word.upper() in ("AND", "OR"):
            joiner = word.upper()
            continue
        if word and word.upper() == "NOT":
            negate = True
            continue
        if key:
            node = _aqs_term(key.lower(), op or "", value.strip('"'), ctx)
        elif phrase is not None:
            node = Match(phrase)
        elif word:
            node = Match(word)
        else:
            continue
        if negate:
            node, negate = Not(node), False
        if joiner == "OR" and parts:
            parts[-1] = Or((parts[-1], node))
        else:
            parts.append(node)
        joiner = "AND"
    del groups
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def _aqs_term(key: str, op: str, value: str, ctx: Context) -> Filter:
    found = _AQS_PROPS.get(key)
    if found is None:
        return Match(f"{key}:{value}")
    ref, how = found
    if how == "bool":
        return Compare(ref, "eq", value.lower() in ("true", "yes", "1"))
    if how == "date":
        ops = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "=": "eq", "": "ge"}
        return Compare(ref, ops[op], to_utc_text(value, ctx.tz))  # type: ignore[arg-type]
    if ref.name == "Body":
        return Match(value)
    return Contains(ref, value, "Substring")
