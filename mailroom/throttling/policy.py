"""Throttling policies: Exchange's EWS parameters, their built-in (Global) values, and how a
caller's effective values are resolved.

A stored policy keeps only the parameters it sets: a missing key inherits the Global policy's
value, a ``None`` value is Exchange's ``$null`` (unlimited). Resolution follows Exchange's
fallback chain: the mailbox's own policy, else the organization default, else the Global
(built-in) policy; a policy that cannot be read (corrupt) is skipped, never fatal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GLOBAL = "GlobalThrottlingPolicy"


@dataclass(frozen=True)
class Parameter:
    name: str  # Exchange's parameter name
    default: int | None  # the Global policy's value; None is unlimited
    minimum: int
    maximum: int | None
    help: str

    @property
    def option(self) -> str:
        """The CLI flag: Exchange's name in kebab case (``--ews-max-concurrency``)."""
        out = []
        for i, ch in enumerate(self.name):
            if ch.isupper() and i and (not self.name[i - 1].isupper() or
                                       (i + 1 < len(self.name) and self.name[i + 1].islower())):
                out.append("-")
            out.append(ch.lower())
        return "--" + "".join(out)


# Exchange 2016's values (the version this server reports); sources in docs/admin-guide.md.
PARAMETERS: tuple[Parameter, ...] = (
    Parameter("EwsMaxConcurrency", 27, 0, None,
              "Concurrent EWS requests per caller (held from receipt to the full response)."),
    Parameter("EwsPercentTimeInCAS", 90, 0, 100,
              "Share (%) of each minute the caller's requests may spend running on this server."),
    Parameter("EwsFindCountLimit", 1000, 0, None,
              "Items (or folders) FindItem/FindFolder may hold in memory for a caller at once."),
    Parameter("EwsMaxSubscriptions", 5000, 0, None, "Live pull and streaming subscriptions per mailbox."),
    Parameter("CPUStartPercent", 75, 0, 100,
              "Process CPU (10 s average over all cores) above which each item of a batch is delayed."),
    Parameter("EwsMaxBurst", 300_000, 0, None,
              "Milliseconds of request time a caller may use above the recharge rate before micro-delays."),
    Parameter("EwsRechargeRate", 900_000, 0, None, "Milliseconds of budget restored per hour."),
    Parameter("EwsCutoffBalance", None, 0, None,
              "Overdraft (ms below zero) at which the caller is refused with ErrorServerBusy until recharged."),
)
BY_NAME = {p.name.lower(): p for p in PARAMETERS}


class PolicyError(ValueError):
    """A parameter name or value that no policy may hold."""


def parameter(name: str) -> Parameter:
    found = BY_NAME.get(name.lower())
    if found is None:
        raise PolicyError(f"unknown throttling parameter {name!r} (known: {', '.join(p.name for p in PARAMETERS)})")
    return found


def parse_value(param: Parameter, text: str) -> int | None:
    """A value as an admin writes it: a whole number, or ``unlimited`` / ``$null`` / ``null``."""
    if text.strip().lower() in ("unlimited", "$null", "null"):
        return None
    try:
        value = int(text.strip())
    except ValueError as exc:
        raise PolicyError(f"{param.name}: {text!r} is not a whole number or 'unlimited'") from exc
    return check(param, value)


def check(param: Parameter, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise PolicyError(f"{param.name}: {value!r} is not a whole number")
    if value < param.minimum or (param.maximum is not None and value > param.maximum):
        upper = param.maximum if param.maximum is not None else "unlimited"
        raise PolicyError(f"{param.name}: {value} is outside {param.minimum}..{upper}")
    return value


def checked_values(values: dict[str, object]) -> dict[str, int | None]:
    """Stored values made canonical (Exchange's names) and validated; PolicyError when corrupt."""
    if not isinstance(values, dict):
        raise PolicyError("a policy's values must be a mapping")
    out: dict[str, int | None] = {}
    for name, value in values.items():
        param = parameter(name)
        out[param.name] = check(param, value)
    return out


@dataclass(frozen=True)
class Policy:
    name: str
    values: dict[str, int | None] = field(default_factory=dict)  # only what it sets
    is_default: bool = False


@dataclass(frozen=True)
class Effective:
    """Every parameter's value for one caller, and the policy each value came from."""

    values: dict[str, int | None]
    sources: dict[str, str]
    policy: str  # the policy the caller is governed by (the first in the chain that could be read)

    def __getitem__(self, name: str) -> int | None:
        return self.values[name]


def resolve(chain: list[Policy]) -> Effective:
    """Effective values from ``chain`` (most specific first): each parameter takes its value from
    the first policy that sets it, else the Global policy."""
    values: dict[str, int | None] = {}
    sources: dict[str, str] = {}
    for param in PARAMETERS:
        owner = next((p for p in chain if param.name in p.values), None)
        values[param.name] = owner.values[param.name] if owner else param.default
        sources[param.name] = owner.name if owner else GLOBAL
    return Effective(values, sources, chain[0].name if chain else GLOBAL)


FALLBACK = resolve([])
