"""Free/busy and meeting suggestions, straight from the calendars (recurring series expanded).

Statuses rank as Exchange merges them (OOF over Busy over Tentative over WorkingElsewhere over
Free); merged free/busy is one digit per interval (0 Free, 1 Tentative, 2 Busy, 3 OOF, 4 No
data, 5 Working elsewhere). Each mailbox has its working hours (store/working_hours.py: by
default Monday to Friday, 08:00 to 17:00 in the requester's zone); suggestions keep to the
working hours of every attendee the server knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from lxml import etree

from mailroom.store import Store
from mailroom.store.model import Item, Mailbox
from mailroom.store.working_hours import WorkingHours

from . import calendar, timezones
from .dates import parse_utc
from .errors import EWSError
from .xml import t, text_of

_RANK = ("Free", "WorkingElsewhere", "Tentative", "Busy", "OOF")
DIGIT = {"Free": "0", "Tentative": "1", "Busy": "2", "OOF": "3", "NoData": "4", "WorkingElsewhere": "5"}
QUALITIES = ("Excellent", "Good", "Fair", "Poor")


@dataclass(frozen=True)
class Event:
    start: datetime  # UTC
    end: datetime
    status: str
    item: Item


def status_of(item: Item) -> str:
    status = item.props.get("LegacyFreeBusyStatus") or "Busy"
    return status if status in _RANK else "Busy"


def events(store: Store, mailbox: Mailbox, start: datetime, end: datetime) -> list[Event]:
    """The mailbox's calendar entries in [start, end) that are not free time."""
    folder = store.folders.distinguished(mailbox, "calendar")
    found = []
    for item in calendar.view(store, mailbox, folder.id, start, end):
        status = status_of(item)
        if status != "Free":
            found.append(Event(parse_utc(item.props["Start"]), parse_utc(item.props["End"]), status, item))
    return found


def status_between(found: list[Event], start: datetime, end: datetime) -> str:
    """The strongest status of the events overlapping [start, end)."""
    statuses = [e.status for e in found if e.start < end and e.end > start]
    return max(statuses, key=_RANK.index) if statuses else "Free"


def is_busy(status: str) -> bool:
    """Whether a status keeps the time from another meeting (free and working elsewhere do not)."""
    return status not in ("Free", "WorkingElsewhere")


def merged(found: list[Event], start: datetime, end: datetime, minutes: int) -> str:
    step = timedelta(minutes=minutes)
    digits = []
    at = start
    while at < end:
        digits.append(DIGIT[status_between(found, at, at + step)])
        at += step
    return "".join(digits)


# -- the request's time zone ---------------------------------------------------------------------
def _transition(node: etree._Element, base_bias: int) -> tuple[timedelta, timezones.Recurrence | None]:
    """One SerializableTimeZoneTime: its offset from UTC and when it begins (None: never)."""
    bias = int(text_of(node, t("Bias"), "0") or 0)
    offset = -timedelta(minutes=base_bias + bias)
    month = int(text_of(node, t("Month"), "0") or 0)
    if not month:
        return offset, None
    day_name = text_of(node, t("DayOfWeek"), "Sunday") or "Sunday"
    if day_name not in timezones.DAY_NAMES:
        raise EWSError("ErrorInvalidRequest", f"DayOfWeek {day_name!r} is not a day.")
    order = int(text_of(node, t("DayOrder"), "1") or 1)
    hours, minutes, *seconds = (int(p) for p in (text_of(node, t("Time"), "00:00:00") or "0:0").split(":"))
    return offset, timezones.Recurrence(month, timezones.DAY_NAMES.index(day_name), -1 if order >= 5 else order,
                                        timedelta(hours=hours, minutes=minutes, seconds=sum(seconds)))


def request_zone(node: etree._Element | None, fallback: tzinfo) -> tzinfo:
    """The zone of a SerializableTimeZone element (the request's times are wall-clock times in it)."""
    if node is None:
        return fallback
    try:
        bias = int(text_of(node, t("Bias"), "0") or 0)
        standard, to_standard = _transition(node.find(t("StandardTime")), bias)
        daylight, to_daylight = _transition(node.find(t("DaylightTime")), bias)
    except (TypeError, ValueError, AttributeError) as exc:
        raise EWSError("ErrorInvalidRequest", "The TimeZone is not valid.") from exc
    if to_standard is None or to_daylight is None or daylight == standard:
        return timezones.RuleZone(timezones.Rule(standard))
    return timezones.RuleZone(timezones.Rule(standard, daylight, to_daylight, to_standard))


# -- suggestions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suggestion:
    start: datetime  # in the request's zone
    quality: str
    conflicts: list[str | None]  # per attendee: its status, None when its calendar is unknown


def quality(conflicts: list[str | None], good_threshold: int) -> str:
    """Excellent when every known attendee is free; Good when at most ``good_threshold`` percent
    are not; Fair up to half; else Poor. Attendees whose calendar is unknown count as free."""
    known = [c for c in conflicts if c is not None]
    if not known:
        return "Excellent"
    busy = sum(1 for c in known if is_busy(c))
    share = 100 * busy / len(known)
    if busy == 0:
        return "Excellent"
    return "Good" if share <= good_threshold else "Fair" if share <= 50 else "Poor"


def work_zone(hours: WorkingHours, requester: tzinfo) -> tzinfo:
    """The zone working hours are kept in: their own, else the requester's."""
    return timezones.zone_for_windows_id(hours.zone) if hours.zone else requester


def is_work_time(hours: WorkingHours, requester: tzinfo, start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one working day of ``hours``."""
    local = start.astimezone(work_zone(hours, requester))
    begins = local.hour * 60 + local.minute
    return local.weekday() in hours.days and hours.start <= begins and \
        begins + (end - start).total_seconds() / 60 <= hours.end


def day_suggestions(day: date, zone: tzinfo, minutes: int, calendars: list[list[Event] | None],
                    good_threshold: int, hours: list[WorkingHours]) -> list[Suggestion]:
    """Each half-hour start of the day (in the requester's ``zone``) where the meeting lies in the
    working hours of everyone in ``hours`` (no one: Exchange's default hours)."""
    hours = hours or [WorkingHours()]
    found = []
    at = datetime.combine(day, datetime.min.time(), zone)
    last = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone) - timedelta(minutes=minutes)
    while at <= last:
        start, end = at.astimezone(UTC), (at + timedelta(minutes=minutes)).astimezone(UTC)
        if all(is_work_time(h, zone, start, end) for h in hours):
            conflicts = [None if c is None else status_between(c, start, end) for c in calendars]
            found.append(Suggestion(at, quality(conflicts, good_threshold), conflicts))
        at += timedelta(minutes=30)
    return found
