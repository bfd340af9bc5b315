"""A small, protocol-neutral query language for finding items and folders.

The EWS layer turns Restriction/SortOrder/QueryString into these values; the SQL back end turns
them into WHERE/ORDER BY clauses. Property references name item properties by their element
name (``Subject``) or extended properties by their canonical key (``tag:0x0037``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Prop:
    """An item/folder property by element name; ``kind`` tells how to compare its values."""

    name: str
    kind: Literal["string", "bool", "int", "float", "datetime", "list", "mailbox"] = "string"


@dataclass(frozen=True, slots=True)
class ExtProp:
    """An extended property by its canonical key; ``multi`` for the array types (any value may match)."""

    key: str
    kind: Literal["string", "bool", "int", "float", "datetime", "binary"] = "string"
    multi: bool = False


Ref = Prop | ExtProp


@dataclass(frozen=True, slots=True)
class Compare:
    ref: Ref
    op: Literal["eq", "ne", "gt", "ge", "lt", "le"]
    value: Any  # a Python value, or another Ref (compare two properties)


@dataclass(frozen=True, slots=True)
class Contains:
    ref: Ref
    value: str
    mode: Literal["FullString", "Prefixed", "Substring", "PrefixOnWords", "ExactPhrase"] = "Substring"
    ignore_case: bool = True


@dataclass(frozen=True, slots=True)
class Exists:
    ref: Ref


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    part: Filter


@dataclass(frozen=True, slots=True)
class Match:
    """Free text (AQS words): any of the text properties contains the word."""

    text: str


Filter = Compare | Contains | Exists | And | Or | Not | Match


@dataclass(frozen=True, slots=True)
class Sort:
    ref: Ref
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    offset: int = 0
    limit: int | None = None
