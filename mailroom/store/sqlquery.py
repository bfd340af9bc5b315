"""Turns store.query filters and sorts into SQL for the items and folders tables.

The semantics are Exchange's: string equality ignores case, a property an object lacks equals
nothing (so it satisfies IsNotEqualTo), a list property (Categories, an array-typed extended
property) matches when one of its values does, and ``Contains`` with ``ignore_case=False`` is
exact on every back end (SQLite's LIKE folds ASCII case, so exact patterns use GLOB there).
A missing value sorts after every other (PostgreSQL's native order, which both back ends
serve from the folder indexes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Table,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal

from . import tables as t
from .query import And, Compare, Contains, Exists, ExtProp, Filter, Match, Not, Or, Prop, Ref, Sort

ITEM_COLUMNS: dict[str, Any] = {
    "ItemClass": t.items.c.item_class,
    "Subject": t.items.c.subject,
    "DateTimeReceived": t.items.c.date_received,
    "DateTimeSent": t.items.c.date_sent,
    "DateTimeCreated": t.items.c.date_created,
    "LastModifiedTime": t.items.c.last_modified,
    "IsRead": t.items.c.is_read,
    "IsAssociated": t.items.c.is_associated,
    "Importance": t.items.c.importance,
    "Size": t.items.c.size,
    "HasAttachments": t.items.c.has_attachments,
    "InternetMessageId": t.items.c.message_id,
    # Not EWS properties: the calendar layer sets them (see tables.items), views filter on them.
    "_SpanStart": t.items.c.span_start,
    "_SpanEnd": t.items.c.span_end,
}
# Searchable, but not an item property the store keeps in props.
_ITEM_QUERY_COLUMNS = {**ITEM_COLUMNS, "Body": t.items.c.body}

FOLDER_COLUMNS: dict[str, Any] = {
    "DisplayName": t.folders.c.display_name,
    "FolderClass": t.folders.c.folder_class,
    "TotalCount": t.folders.c.total_count,
    "UnreadCount": t.folders.c.unread_count,
    "ChildFolderCount": t.folders.c.child_folder_count,
    "DistinguishedFolderId": t.folders.c.distinguished_id,
}

# Properties every item shows with a default when it was never set (see ews.items); restrictions
# see the same value the client does.
_DEFAULTS: dict[str, Any] = {"Sensitivity": "Normal", "IsDraft": False, "ReminderIsSet": False,
                             "IsSubmitted": False, "IsFromMe": False, "IsResend": False}

# Choice properties sort by meaning, not by name (Low < Normal < High), as their MAPI values do.
_RANKS: dict[str, tuple[str, ...]] = {"Importance": ("Low", "Normal", "High"),
                                      "Sensitivity": ("Normal", "Personal", "Private", "Confidential")}

_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}
_NUMERIC = frozenset({"bool", "int", "float"})


# -- back-end specific pieces --------------------------------------------------------------------
class json_strings(FunctionElement[Any]):  # noqa: N801 - SQL function naming
    """The values of a JSON array as rows of a ``value`` column (json_each / jsonb_array_elements_text)."""

    name = "json_strings"
    inherit_cache = True


@compiles(json_strings, "sqlite")
def _json_strings_sqlite(element: json_strings, compiler: Any, **kw: Any) -> str:
    return f"json_each({compiler.process(element.clauses, **kw)})"


@compiles(json_strings, "postgresql")
def _json_strings_pg(element: json_strings, compiler: Any, **kw: Any) -> str:
    return f"jsonb_array_elements_text({compiler.process(element.clauses, **kw)})"


class ExactLike(ColumnElement[bool]):
    """``expr`` matches ``parts`` joined by any-run wildcards, respecting case on every back end."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement),
                           ("like", InternalTraversal.dp_clauseelement),
                           ("glob", InternalTraversal.dp_clauseelement)]

    def __init__(self, expr: ColumnElement[Any], parts: list[str]) -> None:
        self.expr = expr
        self.like = literal("%".join(_like_escape(p) for p in parts))
        self.glob = literal("*".join(_glob_escape(p) for p in parts))


@compiles(ExactLike)
def _exact_like(element: ExactLike, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.expr.like(element.like, escape="\\"), **kw)


@compiles(ExactLike, "sqlite")
def _exact_glob(element: ExactLike, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.expr, **kw)} GLOB {compiler.process(element.glob, **kw)}"


class Sensitivity(ColumnElement[str]):
    """An item's stored Sensitivity, spelt exactly as the partial index ix_items_folder_private
    spells it, so that both back ends count a folder's private items from that index alone."""

    type = Text()
    inherit_cache = True
    _traverse_internals: list[tuple[str, Any]] = []  # nothing varies: one cache key, compiled once


@compiles(Sensitivity)
def _sensitivity(element: Sensitivity, compiler: Any, **kw: Any) -> str:
    return t.SENSITIVITY[compiler.dialect.name].format("items.props")


# 'Private' inline, not a parameter: SQLite uses a partial index only for the very same term.
PRIVATE = Sensitivity() == literal_column("'Private'")
NOT_PRIVATE = func.coalesce(Sensitivity(), "") != "Private"  # no Sensitivity is Normal


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _pattern(expr: ColumnElement[Any], parts: list[str], ignore_case: bool) -> ColumnElement[bool]:
    """``parts`` joined by any-run wildcards (``["", "x", ""]`` = contains x)."""
    if ignore_case:
        return expr.ilike("%".join(_like_escape(p) for p in parts), escape="\\")
    return ExactLike(expr, parts)


def _contains(expr: ColumnElement[Any], node: Contains) -> ColumnElement[bool]:
    v, ic = node.value, node.ignore_case
    if node.mode == "FullString":
        return _pattern(expr, [v], ic)
    if node.mode == "Prefixed":
        return _pattern(expr, [v, ""], ic)
    if node.mode == "PrefixOnWords":
        return or_(_pattern(expr, [v, ""], ic), _pattern(expr, ["", " " + v, ""], ic))
    if node.mode == "ExactPhrase":  # the phrase as whole words
        return or_(_pattern(expr, [v], ic), _pattern(expr, [v + " ", ""], ic),
                   _pattern(expr, ["", " " + v], ic), _pattern(expr, ["", f" {v} ", ""], ic))
    return _pattern(expr, ["", v, ""], ic)


def _compare(op: str, left: ColumnElement[Any], right: Any, kind: str) -> ColumnElement[bool]:
    """``left op right``; strings compare for equality without regard to case."""
    if kind == "string" and op in ("eq", "ne"):
        left = func.lower(left)
        right = right.lower() if isinstance(right, str) else func.lower(right)
    return _OPS[op](left, right)


# -- the translator ------------------------------------------------------------------------------
class Translator:
    """Builds SQL for one table (items or folders)."""

    def __init__(self, table: Table, columns: dict[str, Any], owner_kind: str) -> None:
        self.table = table
        self.columns = columns
        self.owner_kind = owner_kind

    def expr(self, ref: Prop) -> ColumnElement[Any]:
        """The SQL value of a property (NULL when the object does not have it)."""
        column = self.columns.get(ref.name)
        if column is not None:
            return column
        if self.table is t.folders:
            return cast(None, Text)
        value = self.table.c.props[ref.name]
        if ref.kind == "bool":
            value = value.as_boolean()
        elif ref.kind == "int":
            value = value.as_integer()
        elif ref.kind == "float":
            value = value.as_float()
        elif ref.kind == "list":
            return value
        else:
            value = value.as_string()
        return func.coalesce(value, _DEFAULTS[ref.name]) if ref.name in _DEFAULTS else value

    def scalar(self, ref: Ref) -> ColumnElement[Any]:
        """A ref's value as one SQL expression (extended properties through a correlated subquery)."""
        if isinstance(ref, Prop):
            return self.expr(ref)
        ext = t.extended_properties
        return select(self._ext_column(ref)).where(self._owner() == self.table.c.id,
                                                   ext.c.prop_key == ref.key).limit(1).scalar_subquery()

    def where(self, node: Filter | None) -> ColumnElement[bool]:
        if node is None:
            return true()
        if isinstance(node, And):
            return and_(true(), *(self.where(p) for p in node.parts))
        if isinstance(node, Or):
            return or_(false(), *(self.where(p) for p in node.parts))
        if isinstance(node, Not):
            return not_(self.where(node.part))
        if isinstance(node, Exists):
            return self._exists(node.ref)
        if isinstance(node, Compare):  # a comparison with a missing value is false, never unknown (for Not)
            return func.coalesce(self._compare(node), false())
        if isinstance(node, Contains):
            return func.coalesce(self._contains(node), false())
        if isinstance(node, Match):
            return self._match(node.text)
        raise TypeError(f"unknown filter {node!r}")

    # -- extended properties -----------------------------------------------------------------
    def _owner(self) -> ColumnElement[Any]:
        ext = t.extended_properties
        return ext.c.item_id if self.owner_kind == "item" else ext.c.folder_id

    @staticmethod
    def _ext_column(ref: ExtProp) -> ColumnElement[Any]:
        ext = t.extended_properties
        return ext.c.num_value if ref.kind in _NUMERIC else ext.c.str_value

    def _ext_exists(self, ref: ExtProp, test: Callable[[ColumnElement[Any]], ColumnElement[bool]] | None = None,
                    ) -> ColumnElement[bool]:
        """The object has the property (with a value that passes ``test``; any value of an array)."""
        ext = t.extended_properties
        mine = (self._owner() == self.table.c.id, ext.c.prop_key == ref.key)
        if test is None:
            return exists(select(ext.c.id).where(*mine))
        if not ref.multi:
            return exists(select(ext.c.id).where(*mine, test(self._ext_column(ref))))
        values = json_strings(ext.c.value).table_valued("value")
        element = cast(values.c.value, Float) if ref.kind in _NUMERIC else values.c.value
        return exists(select(ext.c.id).select_from(ext.join(values, true())).where(*mine, test(element)))

    # -- the filters -------------------------------------------------------------------------
    def _any(self, ref: Ref, test: Callable[[ColumnElement[Any]], ColumnElement[bool]]) -> ColumnElement[bool]:
        """The ref has a value passing ``test`` (one of the values, for lists)."""
        if isinstance(ref, ExtProp):
            return self._ext_exists(ref, test)
        if ref.kind == "list" and self.table is t.items:
            values = json_strings(self.expr(ref)).table_valued("value")
            return exists(select(literal(1)).select_from(values).where(test(values.c.value)))
        return test(self.expr(ref))

    def _exists(self, ref: Ref) -> ColumnElement[bool]:
        if isinstance(ref, ExtProp):
            return self._ext_exists(ref)
        if ref.name in self.columns:
            return self.columns[ref.name].is_not(None)
        if self.table is t.folders:
            return false()
        return self.table.c.props[ref.name].as_string().is_not(None)

    def _compare(self, node: Compare) -> ColumnElement[bool]:
        ref, value = node.ref, node.value
        if isinstance(value, Prop | ExtProp):
            return _compare(node.op, self.scalar(ref), self.scalar(value), ref.kind)
        if isinstance(ref, Prop) and ref.kind == "mailbox":  # a serialised mailbox: match its address
            stored = self.expr(ref)
            hit = stored.ilike(f"%>{_like_escape(str(value))}<%", escape="\\")
            return or_(stored.is_(None), not_(hit)) if node.op == "ne" else hit
        if isinstance(ref, ExtProp) and ref.kind in _NUMERIC:
            value = float(value)
        if node.op == "ne" and (isinstance(ref, ExtProp) or ref.kind == "list"):
            return not_(self._any(ref, lambda v: _compare("eq", v, value, _element_kind(ref))))
        if node.op == "ne":
            left = self.expr(ref)
            return or_(left.is_(None), _compare("ne", left, value, ref.kind))
        return self._any(ref, lambda v: _compare(node.op, v, value, _element_kind(ref)))

    def _contains(self, node: Contains) -> ColumnElement[bool]:
        if isinstance(node.ref, Prop) and node.ref.kind == "mailbox":
            return _contains(self.expr(node.ref), Contains(node.ref, node.value, "Substring", node.ignore_case))
        return self._any(node.ref, lambda v: _contains(v, node))

    def _match(self, text: str) -> ColumnElement[bool]:
        needle = "%" + _like_escape(text) + "%"
        if self.table is t.folders:
            return t.folders.c.display_name.ilike(needle, escape="\\")
        return or_(
            t.items.c.subject.ilike(needle, escape="\\"),
            t.items.c.body.ilike(needle, escape="\\"),
            cast(t.items.c.props, Text).ilike(needle, escape="\\"),
        )

    # -- sorting -----------------------------------------------------------------------------
    def order_by(self, sorts: list[Sort]) -> list[ColumnElement[Any]]:
        """ORDER BY for ``sorts``, ending with the id in the direction of the last key, so that
        pages are stable and an index on (..., key, id) serves the whole order."""
        clauses: list[ColumnElement[Any]] = []
        for sort in sorts:
            expr = self.scalar(sort.ref)
            if isinstance(sort.ref, Prop) and sort.ref.name in _RANKS:
                expr = case({name: rank for rank, name in enumerate(_RANKS[sort.ref.name])}, value=expr)
            clauses.append(expr.desc().nulls_first() if sort.descending else expr.asc().nulls_last())
        if sorts:
            clauses.append(self.table.c.id.desc() if sorts[-1].descending else self.table.c.id.asc())
        return clauses


def _element_kind(ref: Ref) -> str:
    """How one value of ``ref`` compares (list elements are strings)."""
    return "string" if ref.kind == "list" else ref.kind


ITEMS = Translator(t.items, _ITEM_QUERY_COLUMNS, "item")
FOLDERS = Translator(t.folders, FOLDER_COLUMNS, "folder")
