"""Tasks: Status and PercentComplete kept consistent, dates kept as the client meant them, and the
next task of a recurring series made when one is completed.

StartDate, DueDate and CompleteDate are days. As Exchange does since 2007 SP1 RU4, the offset
a client sends with one (``2030-01-10T22:00:00-08:00``) names the zone of that day: the task is
due on January 10th whatever the server's own zone; the value kept is that day's midnight in the
client's zone. Values without an offset are read in the caller's TimeZoneContext zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, tzinfo
from typing import Any

from . import recurrence
from .dates import parse_datetime, parse_utc
from .errors import EWSError

DATE_ELEMENTS = frozenset({"StartDate", "DueDate", "CompleteDate"})
_TEXT = "%Y-%m-%dT%H:%M:%SZ"


def client_day(text: str, tz: tzinfo) -> str:
    """The day a client's date-time names, as the UTC text of its midnight in the client's zone."""
    parsed = parse_datetime(text)
    zone = parsed.tzinfo or tz
    midnight = datetime.combine(parsed.date(), time(0), zone)
    return midnight.astimezone(UTC).strftime(_TEXT)


def today(tz: tzinfo) -> str:
    """Today in the caller's zone (not the server's), as a task date."""
    return client_day(datetime.now(tz).replace(tzinfo=None).isoformat(), tz)


def normalise(props: dict[str, Any], before: dict[str, Any], tz: tzinfo) -> None:
    """Keep Status, PercentComplete and CompleteDate in step, as Exchange does: 100 percent is
    Completed and Completed is 100 percent; a task started (or reopened) part-way is InProgress;
    NotStarted is 0 percent. ErrorInvalidPercentCompleteValue outside 0 to 100."""
    percent = float(props.get("PercentComplete") or 0)
    if not 0 <= percent <= 100:
        raise EWSError("ErrorInvalidPercentCompleteValue", "PercentComplete must be between 0 and 100.")
    status = props.get("Status") or "NotStarted"
    status_changed = status != (before.get("Status") or "NotStarted")
    percent_changed = percent != float(before.get("PercentComplete") or 0)
    if status_changed and status == "Completed":
        percent = 100.0
    elif status_changed and status == "NotStarted":
        percent = 0.0
    elif status_changed and percent == 100:
        percent = 0.0  # reopened
    elif percent_changed or not status_changed:
        if percent == 100:
            status = "Completed"
        elif percent > 0 and status in ("NotStarted", "Completed"):
            status = "InProgress"
        elif percent == 0 and status == "Completed":
            status = "NotStarted"
    props["Status"], props["PercentComplete"] = status, percent
    props["IsComplete"] = status == "Completed"
    if props.get("Recurrence"):
        recurrence.parse(props["Recurrence"], task=True)  # EWSError when it is not a valid one
    props["IsRecurring"] = bool(props.get("Recurrence"))
    if status == "Completed":
        props.setdefault("CompleteDate", today(tz))
    else:
        props.pop("CompleteDate", None)


def shift(props: dict[str, Any], new_start: datetime) -> dict[str, Any]:
    """The open next task of a series: its dates moved so it starts (or is due) at ``new_start``."""
    moved = {k: v for k, v in props.items() if k != "CompleteDate"}
    anchor = parse_utc(props.get("StartDate") or props["DueDate"])
    delta = new_start - anchor
    for name in ("StartDate", "DueDate"):
        if props.get(name):
            moved[name] = (parse_utc(props[name]) + delta).strftime(_TEXT)
    moved.update(Status="NotStarted", PercentComplete=0.0, IsComplete=False)
    return moved


def day_zone(moment: datetime, candidates: tuple[tzinfo, ...]) -> tzinfo:
    """The zone a stored task date is the midnight of (the caller's, else UTC's)."""
    for zone in candidates:
        if moment.astimezone(zone).time() == time(0):
            return zone
    return UTC
