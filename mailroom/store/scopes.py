"""Management scopes: which mailboxes a grant (such as ApplicationImpersonation) covers.

A scope is written ``all``, ``domain:D``, ``database:DB``, ``mailboxes:A,B`` or ``filter:EXPR``. It is
checked against the target mailbox when a request arrives, so mailboxes created later inside a
domain, database or filter are covered without touching the grant.

``EXPR`` is a small subset of Exchange's OPATH RecipientRestrictionFilter::

    expr       := term ("-or" term)*
    term       := factor ("-and" factor)*
    factor     := "-not" factor | "(" expr ")" | property operator 'value'
    property   := address | PrimarySmtpAddress | domain | database | DisplayName   (any case)
    operator   := -eq | -ne | -like | -notlike
    value      := 'text' or "text"; in -like / -notlike, * matches any run of characters

Comparisons ignore case, as in Exchange. Anything else is rejected when the grant is made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from .model import Mailbox

KINDS = ("all", "domain", "database", "mailboxes", "filter")

PROPERTIES: dict[str, Callable[[Mailbox], str]] = {
    "address": lambda m: m.address,
    "primarysmtpaddress": lambda m: m.address,
    "domain": lambda m: m.address.split("@", 1)[1],
    "database": lambda m: m.database_name,
    "displayname": lambda m: m.display_name,
}

_TOKEN = re.compile(r"""\s*(?:(?P<open>\()|(?P<close>\))|(?P<op>-[A-Za-z]+)|'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|"""
                    r"""(?P<word>[A-Za-z]+))""")
_COMPARISONS = ("-eq", "-ne", "-like", "-notlike")

Predicate = Callable[[Mailbox], bool]
Parser = Callable[[list[tuple[str, str]]], tuple[Predicate, list[tuple[str, str]]]]


class ScopeError(ValueError):
    """A scope or filter the grant cannot be made with; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str
    value: str = ""

    def __str__(self) -> str:
        return self.kind if self.kind == "all" else f"{self.kind}:{self.value}"

    def covers(self, mailbox: Mailbox) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "domain":
            return mailbox.address.split("@", 1)[1] == self.value
        if self.kind == "database":
            return mailbox.database_name.lower() == self.value.lower()
        if self.kind == "mailboxes":
            return bool({mailbox.address, *mailbox.aliases} & set(self.value.split(",")))
        return compile_filter(self.value)(mailbox)


def parse_scope(text: str) -> Scope:
    """``kind[:value]`` as the CLI takes it; mailbox lists and domains are lower-cased, filters checked."""
    kind, _, value = text.strip().partition(":")
    kind, value = kind.strip().lower(), value.strip()
    if kind not in KINDS:
        raise ScopeError(f"unknown scope {text!r}: use all, domain:D, database:DB, mailboxes:A,B or filter:EXPR")
    if kind == "all":
        if value:
            raise ScopeError("the scope 'all' takes no value")
        return Scope("all")
    if not value:
        raise ScopeError(f"the scope {kind} needs a value ({kind}:...)")
    if kind == "domain":
        value = value.lower().rstrip(".")
    elif kind == "mailboxes":
        value = ",".join(sorted({a.strip().lower() for a in value.split(",") if a.strip()}))
    elif kind == "filter":
        compile_filter(value)
    return Scope(kind, value)


@lru_cache(maxsize=256)
def compile_filter(expr: str) -> Predicate:
    """The predicate an OPATH-style filter describes (grammar in the module docstring); cached, as
    grants are checked on every impersonated request."""
    tokens = _tokenize(expr)
    predicate, rest = _expr(tokens)
    if rest:
        raise ScopeError(f"unexpected {rest[0][1]!r} in filter {expr!r}")
    return predicate


def _tokenize(expr: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; kind is open, close, op, value or word."""
    tokens, pos = [], 0
    while pos < len(expr.rstrip()):
        found = _TOKEN.match(expr, pos)
        if found is None:
            raise ScopeError(f"cannot read the filter at {expr[pos:].strip()!r} (values need quotes)")
        kind = found.lastgroup or ""
        text = found.group(kind)
        tokens.append(("value", text) if kind in ("sq", "dq") else (kind, text))
        pos = found.end()
    if not tokens:
        raise ScopeError("the filter is empty")
    return tokens


def _at(tokens: list[tuple[str, str]], operator: str) -> bool:
    return bool(tokens) and tokens[0][0] == "op" and tokens[0][1].lower() == operator


def _chain(tokens: list[tuple[str, str]], operator: str, operand: Parser,
           both: Callable[[Predicate, Predicate], Predicate]) -> tuple[Predicate, list[tuple[str, str]]]:
    """operand (operator operand)*, folded left with ``both``."""
    left, tokens = operand(tokens)
    while _at(tokens, operator):
        right, tokens = operand(tokens[1:])
        left = both(left, right)
    return left, tokens


def _expr(tokens: list[tuple[str, str]]) -> tuple[Predicate, list[tuple[str, str]]]:
    return _chain(tokens, "-or", _term, lambda a, b: lambda m: a(m) or b(m))


def _term(tokens: list[tuple[str, str]]) -> tuple[Predicate, list[tuple[str, str]]]:
    return _chain(tokens, "-and", _factor, lambda a, b: lambda m: a(m) and b(m))


def _factor(tokens: list[tuple[str, str]]) -> tuple[Predicate, list[tuple[str, str]]]:
    if not tokens:
        raise ScopeError("the filter ends too early")
    kind, text = tokens[0]
    if _at(tokens, "-not"):
        inner, rest = _factor(tokens[1:])
        return (lambda m: not inner(m)), rest
    if kind == "open":
        inner, rest = _expr(tokens[1:])
        if not rest or rest[0][0] != "close":
            raise ScopeError("a '(' in the filter is not closed")
        return inner, rest[1:]
    if kind != "word" or text.lower() not in PROPERTIES:
        raise ScopeError(f"unknown property {text!r} in the filter: use {', '.join(sorted(PROPERTIES))}")
    if len(tokens) < 3 or tokens[1][0] != "op" or tokens[1][1].lower() not in _COMPARISONS:
        raise ScopeError(f"{text} needs one of {', '.join(_COMPARISONS)} and a quoted value")
    if tokens[2][0] != "value":
        raise ScopeError(f"the value compared with {text} must be quoted")
    return _comparison(PROPERTIES[text.lower()], tokens[1][1].lower(), tokens[2][1]), tokens[3:]


def _comparison(read: Callable[[Mailbox], str], operator: str, value: str) -> Predicate:
    if operator in ("-eq", "-ne"):
        wanted = value.lower()
        return (lambda m: read(m).lower() == wanted) if operator == "-eq" else (lambda m: read(m).lower() != wanted)
    pattern = re.compile(".*".join(re.escape(part) for part in value.split("*")), re.IGNORECASE | re.DOTALL)
    if operator == "-like":
        return lambda m: pattern.fullmatch(read(m)) is not None
    return lambda m: pattern.fullmatch(read(m)) is None


@dataclass(frozen=True, slots=True)
class Grant:
    """One ApplicationImpersonation grant: ``account`` (its primary address) may act as any mailbox ``scope`` covers."""

    account: str
    scope: Scope
    created: str
