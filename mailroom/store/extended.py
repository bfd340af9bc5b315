"""Extended (MAPI) property rows for folders and items."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, insert, select

from . import tables as t
from .model import ExtendedValue

_NUMERIC_TYPES = frozenset({
    "Short", "Integer", "Long", "Float", "Double", "Currency", "ApplicationTime", "Boolean", "Error",
})


def _scalar_columns(prop_type: str, value: str | list[str]) -> tuple[str | None, float | None]:
    if isinstance(value, list):
        return None, None
    if prop_type in _NUMERIC_TYPES:
        if prop_type == "Boolean":
            return value, 1.0 if value.strip().lower() == "true" else 0.0
        try:
            return value, float(value)
        except ValueError:
            return value, None
    return value, None


def owner_column(kind: str):  # noqa: ANN201 - a Column
    return t.extended_properties.c.item_id if kind == "item" else t.extended_properties.c.folder_id


def load(conn: Connection, kind: str, owner_ids: Iterable[int]) -> dict[int, list[ExtendedValue]]:
    ids = list(owner_ids)
    found: dict[int, list[ExtendedValue]] = {i: [] for i in ids}
    if not ids:
        return found
    col = owner_column(kind)
    rows = conn.execute(
        select(col, t.extended_properties.c.prop_key, t.extended_properties.c.prop_type,
               t.extended_properties.c.value)
        .where(col.in_(ids)).order_by(t.extended_properties.c.id)
    ).all()
    for owner, key, prop_type, value in rows:
        found[owner].append(ExtendedValue(key, prop_type, value))
    return found


def save(conn: Connection, kind: str, owner_id: int, values: Iterable[ExtendedValue]) -> None:
    """Set each property, replacing an earlier value of the same key."""
    col = owner_column(kind)
    for ext in values:
        conn.execute(delete(t.extended_properties).where(col == owner_id,
                                                          t.extended_properties.c.prop_key == ext.key))
        str_value, num_value = _scalar_columns(ext.prop_type, ext.value)
        conn.execute(insert(t.extended_properties).values(
            {col.key: owner_id, "prop_key": ext.key, "prop_type": ext.prop_type, "value": ext.value,
             "str_value": str_value, "num_value": num_value}))


def remove(conn: Connection, kind: str, owner_id: int, keys: Iterable[str]) -> None:
    keys = list(keys)
    if keys:
        conn.execute(delete(t.extended_properties).where(owner_column(kind) == owner_id,
                                                          t.extended_properties.c.prop_key.in_(keys)))


def copy(conn: Connection, kind: str, from_id: int, to_id: int) -> None:
    save(conn, kind, to_id, load(conn, kind, [from_id])[from_id])
