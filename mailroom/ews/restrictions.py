"""Restriction, SortOrder and QueryString (AQS) into the store's query language."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import cache

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

from . import mapi
from .context import Context
from .dates import to_utc_text, typed_value
from .errors import EWSError, SOAPFault
from .extended import ExtendedField, constant
from .paths import FieldPath, IndexedPath, first_path
from .schema import ITEM_ELEMENTS, schema
from .xml import local, t

MAX_DEPTH = 32  # nesting a restriction or a query string may have (each level costs stack in SQL and here)
_COMPARE = {"IsEqualTo": "eq", "IsNotEqualTo": "ne", "IsGreaterThan": "gt", "IsGreaterThanOrEqualTo": "ge",
            "IsLessThan": "lt", "IsLessThanOrEqualTo": "le"}
_FOLDER_KINDS = {"TotalCount": "int", "UnreadCount": "int", "ChildFolderCount": "int"}
_MAILBOX_TYPES = frozenset({"t:SingleRecipientType", "t:ArrayOfRecipientsType"})
# ContainmentComparison values that ignore case (the Loose ones too); the non-spacing-character
# variants compare accents as they are.
_IGNORE_CASE = frozenset({"IgnoreCase", "IgnoreCaseAndNonSpacingCharacters", "Loose", "LooseAndIgnoreCase",
                          "LooseAndIgnoreNonSpace", "LooseAndIgnoreCaseAndIgnoreNonSpace"})


@cache
def _item_kind(element: str) -> str:
    """How an item property compares: the schema type of the first item type that has it."""
    if element == "Body":
        return "string"
    for type_name in dict.fromkeys(ITEM_ELEMENTS.values()):
        found = schema().element(type_name, element)
        if found is None:
            continue
        if found.simple or found.kind == "list":
            return found.kind
        if found.type_name in _MAILBOX_TYPES:
            return "mailbox"
        break
    raise EWSError("ErrorUnsupportedPathForQuery", f"{element} cannot be used in a restriction or sort.")


def to_ref(node: etree._Element, folders: bool) -> Ref:
    """The property a restriction or FieldOrder names."""
    path = first_path(node)
    if isinstance(path, ExtendedField):
        element = None if folders else mapi.PROPERTY_OF_TAG.get(path.key)
        if element is not None:
            return Prop(element, _item_kind(element))  # type: ignore[arg-type]
        return ExtProp(path.key, path.kind, path.multi)  # type: ignore[arg-type]
    if isinstance(path, IndexedPath):
        raise EWSError("ErrorUnsupportedPathForQuery", f"{path.uri} cannot be used in a restriction.")
    if not isinstance(path, FieldPath):
        raise TypeError(path)
    if folders:
        return Prop(path.element, _FOLDER_KINDS.get(path.element, "string"))  # type: ignore[arg-type]
    return Prop(path.element, _item_kind(path.element))  # type: ignore[arg-type]


def _constant(value: str, ref: Ref, node: etree._Element, ctx: Context) -> object:
    """A Constant's value in the type the property (the path in ``node``) compares as."""
    if isinstance(ref, ExtProp):
        field = first_path(node)
        if isinstance(field, ExtendedField):
            value = constant(field, value, ctx.tz)  # checked and normalised as when it is set
    try:
        return typed_value(ref.kind, value, ctx.tz)
    except ValueError as exc:
        raise EWSError("ErrorInvalidValueForProperty", f"{value!r} is not valid for this property.") from exc


def parse_restriction(node: etree._Element | None, ctx: Context, folders: bool = False) -> Filter | None:
    if node is None or len(node) == 0:
        return None
    return _expr(node[0], ctx, folders, 0)


def _expr(node: etree._Element, ctx: Context, folders: bool, depth: int) -> Filter:
    name = local(node.tag)
    if depth > MAX_DEPTH:
        raise EWSError("ErrorRestrictionTooComplex", "The restriction is nested too deeply.")
    if name in ("And", "Or"):
        parts = tuple(_expr(c, ctx, folders, depth + 1) for c in node)
        if not parts:
            raise SOAPFault("ErrorSchemaValidation", f"{name} needs at least one expression.")
        return And(parts) if name == "And" else Or(parts)
    if name == "Not":
        if len(node) != 1:
            raise SOAPFault("ErrorSchemaValidation", "Not takes exactly one expression.")
        return Not(_expr(node[0], ctx, folders, depth + 1))
    if name == "Exists":
        return Exists(to_ref(node, folders))
    if name in _COMPARE:
        ref = to_ref(node, folders)
        other = node.find(t("FieldURIOrConstant"))
        if other is None or len(other) != 1:
            raise SOAPFault("ErrorSchemaValidation", f"{name} needs one FieldURIOrConstant.")
        target = other[0]
        if local(target.tag) == "Constant":
            value = _constant(target.get("Value") or "", ref, node, ctx)
            return Compare(ref, _COMPARE[name], value)  # type: ignore[arg-type]
        return Compare(ref, _COMPARE[name], to_ref(other, folders))  # type: ignore[arg-type]
    if name == "Contains":
        return _contains(node, folders)
    if name == "Excludes":
        raise EWSError("ErrorUnsupportedQueryFilter", "Excludes (bitmask) restrictions are not supported.")
    raise SOAPFault("ErrorSchemaValidation", f"{name} is not a search expression.")


def _contains(node: etree._Element, folders: bool) -> Contains:
    ref = to_ref(node, folders)
    if ref.kind not in ("string", "list", "mailbox"):
        raise EWSError("ErrorContainsFilterWrongType", "The Contains filter can only be used for string properties.")
    constant_el = node.find(t("Constant"))
    if constant_el is None:
        raise SOAPFault("ErrorSchemaValidation", "Contains needs a Constant.")
    mode = node.get("ContainmentMode") or "FullString"
    comparison = node.get("ContainmentComparison") or "Exact"
    if (mode not in schema().enumeration("ContainmentModeType")
            or comparison not in schema().enumeration("ContainmentComparisonType")):
        raise SOAPFault("ErrorSchemaValidation", f"ContainmentMode {mode!r} / {comparison!r} is not valid.")
    return Contains(ref, constant_el.get("Value") or "", mode,  # type: ignore[arg-type]
                    ignore_case=comparison in _IGNORE_CASE)


def parse_sort(node: etree._Element | None, folders: bool = False) -> list[Sort]:
    if node is None:
        return []
    sorts = []
    for order in node.findall(t("FieldOrder")):
        direction = order.get("Order") or "Ascending"
        if direction not in ("Ascending", "Descending"):
            raise SOAPFault("ErrorSchemaValidation", f"Order {direction!r} is not valid.")
        try:
            ref = to_ref(order, folders)
        except EWSError as err:
            raise EWSError("ErrorUnsupportedPathForSortGroup", err.message) from err
        sorts.append(Sort(ref, direction == "Descending"))
    return sorts


# -- QueryString (AQS) ---------------------------------------------------------------------------
# The property keywords of Outlook's search syntax ([MS-OXWSSRCH] 2.2.4.21) clients send.
_AQS_PROPS: dict[str, Prop] = {
    "subject": Prop("Subject"), "body": Prop("Body"), "from": Prop("From", "mailbox"),
    "to": Prop("ToRecipients", "mailbox"), "cc": Prop("CcRecipients", "mailbox"),
    "bcc": Prop("BccRecipients", "mailbox"), "category": Prop("Categories", "list"),
    "hasattachment": Prop("HasAttachments", "bool"), "hasattachments": Prop("HasAttachments", "bool"),
    "isread": Prop("IsRead", "bool"), "isflagged": Prop("IsFlagged", "bool"), "kind": Prop("ItemClass"),
    "received": Prop("DateTimeReceived", "datetime"), "sent": Prop("DateTimeSent", "datetime"),
    "importance": Prop("Importance"), "size": Prop("Size", "int"),
}
_AQS_KINDS = {"email": "IPM.Note", "meetings": "IPM.Schedule", "calendar": "IPM.Appointment",
              "contacts": "IPM.Contact", "tasks": "IPM.Task", "notes": "IPM.StickyNote", "posts": "IPM.Post"}
_AQS_OPS = {">": "gt", ">=": "ge", "<": "lt", "<=": "le", "=": "eq", "": "eq"}
_TOKEN = re.compile(r'\s*(?:(\()|(\))|(\w+):\s*(>=|<=|>|<|=)?\s*|"([^"]*)"?|([^\s()"]+))')


def parse_query_string(text: str, ctx: Context) -> Filter | None:
    """Simple AQS: words and quoted phrases (free text), ``prop:value`` and ``prop:(a OR b)``,
    comparisons on dates and numbers, AND / OR / NOT (AND binds tighter) and parentheses."""
    tokens = [m.groups() for m in _TOKEN.finditer(text) if any(m.groups())]
    parser = _AQSParser(tokens, ctx)
    parts: list[Filter] = []
    while parser.pos < len(tokens):
        part = parser.disjunction(None)
        if part is not None:
            parts.append(part)
        parser.pos += 1  # past an unmatched ")"
    return None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))


class _AQSParser:
    """Recursive descent over the tokens; ``key`` is the property a ``prop:(...)`` group applies to."""

    def __init__(self, tokens: list[tuple[str | None, ...]], ctx: Context) -> None:
        self.tokens = tokens
        self.pos = 0
        self.ctx = ctx
        self.depth = 0

    def _peek_word(self) -> str | None:
        if self.pos < len(self.tokens):
            word = self.tokens[self.pos][5]
            return word.upper() if word else None
        return None

    def disjunction(self, key: tuple[str, str] | None) -> Filter | None:
        parts = [p for p in [self.conjunction(key)] if p is not None]
        while self._peek_word() == "OR":
            self.pos += 1
            part = self.conjunction(key)
            if part is not None:
                parts.append(part)
        return None if not parts else parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self, key: tuple[str, str] | None) -> Filter | None:
        parts: list[Filter] = []
        while self.pos < len(self.tokens) and self.tokens[self.pos][1] is None and self._peek_word() != "OR":
            if self._peek_word() == "AND":
                self.pos += 1
                continue
            part = self.unary(key)
            if part is not None:
                parts.append(part)
        return None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self, key: tuple[str, str] | None) -> Filter | None:
        if self.pos >= len(self.tokens) or self.tokens[self.pos][1]:  # nothing (more) in this group
            return None
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise EWSError("ErrorQueryFilterTooLong", "The query string is nested too deeply.")
        try:
            return self._operand(key)
        finally:
            self.depth -= 1

    def _operand(self, key: tuple[str, str] | None) -> Filter | None:
        if self._peek_word() == "NOT":
            self.pos += 1
            part = self.unary(key)
            return Not(part) if part is not None else None
        opening, _closing, name, op, phrase, word = self.tokens[self.pos]
        self.pos += 1
        if opening:
            inner = self.disjunction(key)
            if self.pos < len(self.tokens) and self.tokens[self.pos][1]:
                self.pos += 1
            return inner
        if name:
            return self.unary((name.lower(), op or ""))
        value = phrase if phrase is not None else word or ""
        return _aqs_term(key, value, self.ctx) if key else Match(value)


def _aqs_term(key: tuple[str, str], value: str, ctx: Context) -> Filter:
    name, op = key
    ref = _AQS_PROPS.get(name)
    if ref is None:
        return Match(f"{name}:{value}")
    if ref.kind == "bool":
        return Compare(ref, "eq", value.lower() in ("true", "yes", "1"))
    if ref.kind == "int":
        try:
            return Compare(ref, _AQS_OPS[op], int(value))
        except ValueError:
            return Match(value)
    if ref.kind == "datetime":
        return _aqs_date(ref, op, value, ctx)
    if name == "kind":
        return Contains(ref, _AQS_KINDS.get(value.lower(), value), "Prefixed", ignore_case=True)
    return Contains(ref, value, "Substring", ignore_case=True)


def _aqs_date(ref: Prop, op: str, value: str, ctx: Context) -> Filter:
    """A date keyword: a whole day (in the caller's zone) unless the value has a time of day."""
    today = datetime.now(ctx.tz).date()
    relative = {"today": today, "yesterday": today - timedelta(days=1), "tomorrow": today + timedelta(days=1)}
    day = relative.get(value.lower())
    if day is None and "T" not in value and len(value) <= 10:
        try:
            day = datetime.strptime(value, "%Y-%m-%d").date()
        except ValueError:
            return Match(value)
    if day is None:
        return Compare(ref, _AQS_OPS[op], to_utc_text(value, ctx.tz))  # type: ignore[arg-type]
    start = to_utc_text(day.isoformat() + "T00:00:00", ctx.tz)
    end = to_utc_text((day + timedelta(days=1)).isoformat() + "T00:00:00", ctx.tz)
    if op in ("", "="):
        return And((Compare(ref, "ge", start), Compare(ref, "lt", end)))
    bound = {"gt": end, "ge": start, "lt": start, "le": end}[_AQS_OPS[op]]
    return Compare(ref, {"gt": "ge", "le": "lt"}.get(_AQS_OPS[op], _AQS_OPS[op]), bound)  # type: ignore[arg-type]
