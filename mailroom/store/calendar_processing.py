"""Calendar processing settings (Exchange's Set-CalendarProcessing): how the Resource Booking
Attendant answers meeting requests sent to a mailbox (mailroom/transport/resource_booking.py).

A mailbox keeps only the parameters it sets, by Exchange's name; the rest take Exchange's
defaults, which are those of a resource mailbox, except that a user mailbox is AutoUpdate (the
calendar attendant places requests tentatively; the owner answers them).
"""

from __future__ import annotations

import contextlib
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any

from sqlalchemy import Engine, select

from . import tables as t
from .directory import Directory
from .engine import reading, writing
from .model import Mailbox

AUTOMATE = ("None", "AutoUpdate", "AutoAccept")
_TRUE, _FALSE = ("true", "$true", "yes", "1"), ("false", "$false", "no", "0")


def _param(default: Any, text: str, **limits: Any) -> Any:  # noqa: ANN401 - a dataclass field
    return field(default=default, metadata={"help": text, **limits})


@dataclass(frozen=True)
class CalendarProcessing:
    """Every parameter's effective value; field names are Exchange's in snake case."""

    automate_processing: str = _param("AutoAccept", "None: requests stay in the Inbox untouched; AutoUpdate: placed "
                                      "tentatively, as for a user; AutoAccept: booked or declined at delivery.",
                                      choices=AUTOMATE)
    allow_conflicts: bool = _param(False, "Accept a request that overlaps an existing booking.")
    booking_window_in_days: int = _param(180, "How far ahead (days) the resource may be booked.", maximum=1080)
    enforce_scheduling_horizon: bool = _param(True, "Decline a recurring meeting that goes on past the booking "
                                              "window (false: only its occurrences inside the window are checked).")
    schedule_only_during_work_hours: bool = _param(False, "Decline meetings outside the resource's working hours "
                                                   "(mailbox set --work-days / --working-hours-*).")
    maximum_duration_in_minutes: int = _param(1440, "Longest meeting accepted (0: no limit).", maximum=2 ** 31 - 1)
    allow_recurring_meetings: bool = _param(True, "Accept recurring meetings.")
    maximum_conflict_instances: int = _param(0, "Occurrences of a recurring meeting that may conflict (they are "
                                             "declined, the rest booked) before the whole series is declined.",
                                             maximum=2 ** 31 - 1)
    conflict_percentage_allowed: int = _param(0, "Share (%) of a recurring meeting's occurrences that may conflict.",
                                              maximum=100)
    process_external_meeting_messages: bool = _param(False, "Process requests from organizers outside the "
                                                     "organization's accepted domains (false: they are declined).")
    add_organizer_to_subject: bool = _param(True, "The booking's subject names the organizer.")
    delete_subject: bool = _param(True, "The booking keeps no subject of the request's own.")
    delete_comments: bool = _param(True, "The booking keeps no body (the request's text).")
    add_additional_response: bool = _param(False, "Append AdditionalResponse to the answers sent.")
    additional_response: str = _param("", "Text appended to the answers when AddAdditionalResponse is true.",
                                      maximum=8000)

    def values(self) -> dict[str, Any]:
        """Every value by Exchange's parameter name."""
        return {exchange_name(f.name): getattr(self, f.name) for f in fields(self)}


def exchange_name(name: str) -> str:
    """``booking_window_in_days`` -> ``BookingWindowInDays``."""
    return "".join(part.capitalize() for part in name.split("_"))


PARAMETERS = {exchange_name(f.name): f for f in fields(CalendarProcessing)}


def defaults(mailbox: Mailbox) -> CalendarProcessing:
    """Exchange's settings for a new mailbox of this kind."""
    return CalendarProcessing() if mailbox.kind != "user" else CalendarProcessing(automate_processing="AutoUpdate")


def _parameter(name: str) -> Field:
    """The parameter Exchange calls ``name``; ValueError for one it does not know."""
    param = PARAMETERS.get(name)
    if param is None:
        raise ValueError(f"unknown calendar processing parameter {name!r} (known: {', '.join(PARAMETERS)})")
    return param


def parse_value(name: str, text: str) -> Any:  # noqa: ANN401 - the parameter's own type
    """A value of the parameter ``name`` (Exchange's) as an admin writes it (``$true``, ``180``,
    ``autoaccept``), checked; ValueError if wrong."""
    param = _parameter(name)
    value: Any = text
    if isinstance(param.default, bool):
        if text.strip().lower() not in (*_TRUE, *_FALSE):
            raise ValueError(f"{exchange_name(param.name)}: {text!r} is not true or false")
        value = text.strip().lower() in _TRUE
    elif isinstance(param.default, int):
        try:
            value = int(text.strip())
        except ValueError as exc:
            raise ValueError(f"{exchange_name(param.name)}: {text!r} is not a whole number") from exc
    return check(param, value)


def check(param: Field, value: Any) -> Any:  # noqa: ANN401 - the parameter's own type
    """``value`` for the parameter ``param``, canonical; ValueError when it cannot hold it."""
    label = exchange_name(param.name)
    if type(value) is not type(param.default):
        raise ValueError(f"{label}: {value!r} is not a {type(param.default).__name__}")
    choices = param.metadata.get("choices")
    if choices:
        found = [c for c in choices if c.lower() == value.lower()]
        if not found:
            raise ValueError(f"{label}: {value!r} is not one of {', '.join(choices)}")
        return found[0]
    maximum = param.metadata.get("maximum")
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= maximum:
        raise ValueError(f"{label}: {value} is outside 0..{maximum}")
    if isinstance(value, str) and len(value) > maximum:
        raise ValueError(f"{label}: longer than {maximum} characters")
    return value


class CalendarProcessingSettings:
    def __init__(self, engine: Engine, directory: Directory) -> None:
        self.engine = engine
        self.directory = directory

    def get(self, mailbox: Mailbox) -> CalendarProcessing:
        """The mailbox's effective settings (a stored value that no longer reads as valid is ignored)."""
        c = t.calendar_processing.c
        with reading(self.engine) as conn:
            stored = conn.scalar(select(c.settings).where(c.mailbox_id == mailbox.id)) or {}
        values = {}
        for name, value in stored.items():
            param = PARAMETERS.get(name)
            if param is not None:
                with contextlib.suppress(ValueError):
                    values[param.name] = check(param, value)
        return replace(defaults(mailbox), **values)

    def set(self, address: str, values: dict[str, Any]) -> CalendarProcessing:
        """Set parameters (by Exchange's name, values already of their type) and return the result."""
        mailbox = self.directory.require(address)
        checked = {name: check(_parameter(name), value) for name, value in values.items()}
        c = t.calendar_processing.c
        with writing(self.engine) as w:
            stored = w.conn.scalar(select(c.settings).where(c.mailbox_id == mailbox.id)) or {}
            w.replace_row(t.calendar_processing, mailbox.id, settings={**stored, **checked})
        return self.get(mailbox)
