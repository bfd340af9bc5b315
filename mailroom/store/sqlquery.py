"""Turns store.query filters and sorts into SQL for the items and folders tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    and_,
    cast,
    exists,
    false,
    not_,
    or_,
    select,
    true,
)

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
}

FOLDER_COLUMNS: dict[str, Any] = {
    "DisplayName": t.folders.c.display_name,
    "FolderClass": t.folders.c.folder_class,
    "TotalCount": t.folders.c.total_count,
    "UnreadCount": t.folders.c.unread_count,
    "ChildFolderCount": t.folders.c.child_folder_count,
    "DistinguishedFolderId": t.folders.c.distinguished_id,
}

_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


class Translator:
    """Builds SQL for one table (items or folders)."""

    def __init__(self, table: Table, columns: dict[str, Any], owner_kind: str) -> None:
        self.table = table
        self.columns = columns
        self.owner_kind = owner_kind

    def expr(self, ref: Prop) -> ColumnElement[Any]:
        column = self.columns.get(ref.name)
        if column is not None:
            return column
        if self.table is t.folders:
            return cast(None, Text)
        value = self.table.c.props[ref.name]
        if ref.kind == "bool":
            return value.as_boolean()
        if ref.kind == "int":
            return value.as_integer()
        if ref.kind == "float":
            return value.as_float()
        if ref.kind == "list":
            return cast(value, Text)
        return value.as_string()

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
        if isinstance(node, Compare):
            return self._compare(node)
        if isinstance(node, Contains):
            return self._contains(node)
        if isinstance(node, Match):
            return self._match(node.text)
        raise TypeError(f"unknown filter {node!r}")

    def _ext_exists(self, ref: ExtProp, *conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        ext = t.extended_properties
        owner = ext.c.item_id if self.owner_kind == "item" else ext.c.folder_id
        return exists(select(ext.c.id).where(owner == self.table.c.id, ext.c.prop_key == ref.key, *conditions))

    def _ext_value(self, ref: ExtProp) -> ColumnElement[Any]:
        ext = t.extended_properties
        return ext.c.num_value if ref.kind in ("int", "float", "bool") else ext.c.str_value

    def _exists(self, ref: Ref) -> ColumnElement[bool]:
        if isinstance(ref, ExtProp):
            return self._ext_exists(ref)
        if ref.name in self.columns:
            return self.columns[ref.name].is_not(None)
        if self.table is t.folders:
            return false()
        return self.table.c.props[ref.name].as_string().is_not(None)

    def _compare(self, node: Compare) -> ColumnElement[bool]:
        op = _OPS[node.op]
        if isinstance(node.ref, ExtProp):
            value = _ext_number(node.ref, node.value)
            if node.op == "ne":
                return not_(self._ext_exists(node.ref, self._ext_value(node.ref) == value))
            return self._ext_exists(node.ref, op(self._ext_value(node.ref), value))
        left = self.expr(node.ref)
        if isinstance(node.value, Prop):
            return op(left, self.expr(node.value))
        if node.ref.kind == "list":
            needle = '%"' + _like_escape(str(node.value)) + '"%'
            hit = left.ilike(needle, escape="\\")
            return not_(hit) if node.op == "ne" else hit
        if node.op == "ne":
            return or_(left.is_(None), left != node.value)
        return op(left, node.value)

    def _contains(self, node: Contains) -> ColumnElement[bool]:
        if isinstance(node.ref, ExtProp):
            return self._ext_exists(node.ref, _like(self._ext_value(node.ref), node))
        return _like(self.expr(node.ref), node)

    def _match(self, text: str) -> ColumnElement[bool]:
        needle = "%" + _like_escape(text) + "%"
        if self.table is t.folders:
            return t.folders.c.display_name.ilike(needle, escape="\\")
        return or_(
            t.items.c.subject.ilike(needle, escape="\\"),
            t.items.c.body.ilike(needle, escape="\\"),
            cast(t.items.c.props, Text).ilike(needle, escape="\\"),
        )

    def order_by(self, sorts: list[Sort]) -> list[ColumnElement[Any]]:
        clauses: list[ColumnElement[Any]] = []
        for sort in sorts:
            if isinstance(sort.ref, ExtProp):
                ext = t.extended_properties
                owner = ext.c.item_id if self.owner_kind == "item" else ext.c.folder_id
                expr = (select(self._ext_value(sort.ref)).where(owner == self.table.c.id,
                                                                ext.c.prop_key == sort.ref.key)
                        .limit(1).scalar_subquery())
            else:
                expr = self.expr(sort.ref)
            clauses.append(expr.desc().nulls_last() if sort.descending else expr.asc().nulls_first())
        return clauses


def _ext_number(ref: ExtProp, value: Any) -> Any:
    if ref.kind == "bool":
        return 1.0 if value in (True, "true", "True", "1", 1) else 0.0
    if ref.kind in ("int", "float"):
        return float(value)
    return value


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _like(expr: ColumnElement[Any], node: Contains) -> ColumnElement[bool]:
    value = _like_escape(node.value)
    if node.mode == "FullString":
        pattern = value
    elif node.mode == "Prefixed":
        pattern = value + "%"
    elif node.mode == "PrefixOnWords":
        patterns = [value + "%", "% " + value + "%"]
        return or_(*(_cmp_like(expr, p, node.ignore_case) for p in patterns))
    else:
        pattern = "%" + value + "%"
    return _cmp_like(expr, pattern, node.ignore_case)


def _cmp_like(expr: ColumnElement[Any], pattern: str, ignore_case: bool) -> ColumnElement[bool]:
    if ignore_case:
        return expr.ilike(pattern, escape="\\")
    return expr.like(pattern, escape="\\")


ITEMS = Translator(t.items, ITEM_COLUMNS, "item")
FOLDERS = Translator(t.folders, FOLDER_COLUMNS, "folder")
