"""EWS recurrences (RecurrenceType, TaskRecurrenceType) as dateutil rules.

A series repeats the wall-clock time of its first occurrence in its own time zone, so a weekly
9:00 meeting stays at 9:00 across daylight saving changes. Occurrences are numbered from 1 (the
InstanceIndex of an OccurrenceItemId). Regenerating patterns (tasks only) have no fixed dates: the
next occurrence follows the completion of the previous one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from dateutil import rrule
from dateutil.relativedelta import relativedelta
from lxml import etree

from .errors import EWSError
from .xml import local, parse_fragment, t

_DAYS = {"Monday": rrule.MO, "Tuesday": rrule.TU, "Wednesday": rrule.WE, "Thursday": rrule.TH,
         "Friday": rrule.FR, "Saturday": rrule.SA, "Sunday": rrule.SU}
_DAY_GROUPS = {"Day": tuple(_DAYS.values()), "Weekday": (rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR),
               "WeekendDay": (rrule.SA, rrule.SU)}
DAY_INDEXES = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_REGENERATION = {"DailyRegeneration": "days", "WeeklyRegeneration": "weeks", "MonthlyRegeneration": "months",
                 "YearlyRegeneration": "years"}
NO_END = "9999-12-31T23:59:59Z"


def _invalid(message: str, code: str = "ErrorCalendarInvalidRecurrence") -> EWSError:
    return EWSError(code, message)


def _text(node: etree._Element, name: str) -> str | None:
    child = node.find(t(name))
    return None if child is None or child.text is None else child.text.strip()


def _number(node: etree._Element, name: str, low: int, high: int) -> int:
    text = _text(node, name)
    try:
        value = int(text or "")
    except ValueError as exc:
        raise _invalid(f"{name} must be a number.") from exc
    if not low <= value <= high:
        raise _invalid(f"{name} {value} is out of range.", "ErrorCalendarOutOfRange")
    return value


def _date(text: str | None, name: str) -> date:
    """An xs:date, with or without a zone suffix (the date is what counts)."""
    try:
        return date.fromisoformat((text or "")[:10])
    except ValueError as exc:
        raise _invalid(f"{name} is not a valid date.") from exc


def _weekdays(node: etree._Element, weekly: bool) -> tuple[rrule.weekday, ...]:
    names = (_text(node, "DaysOfWeek") or "").split()
    if not names:
        raise _invalid("DaysOfWeek is empty.")
    days: list[rrule.weekday] = []
    for name in names:
        if name in _DAY_GROUPS and not weekly:
            days.extend(_DAY_GROUPS[name])
        elif name in _DAYS:
            days.append(_DAYS[name])
        else:
            raise _invalid(f"{name} is not valid here.", "ErrorCalendarInvalidDayForWeeklyRecurrence")
    return tuple(days)


def _day_of_month(node: etree._Element) -> dict[str, object]:
    """A day of the month; in a month too short for it, the month's last day (as Outlook does)."""
    day = _number(node, "DayOfMonth", 1, 31)
    return {"bymonthday": day} if day <= 28 else {"bymonthday": tuple(range(28, day + 1)), "bysetpos": -1}


def _relative(node: etree._Element) -> dict[str, object]:
    index = _text(node, "DayOfWeekIndex")
    if index not in DAY_INDEXES:
        raise _invalid(f"DayOfWeekIndex {index!r} is not valid.")
    return {"byweekday": _weekdays(node, weekly=False), "bysetpos": DAY_INDEXES[index]}


def _month(node: etree._Element) -> int:
    name = _text(node, "Month")
    if name not in MONTHS:
        raise _invalid(f"Month {name!r} is not valid.")
    return MONTHS.index(name) + 1


def _pattern(node: etree._Element) -> tuple[int, dict[str, object]]:
    """The rrule frequency and arguments of a fixed pattern element."""
    name = local(node.tag)
    if name == "DailyRecurrence":
        return rrule.DAILY, {"interval": _number(node, "Interval", 1, 999)}
    if name == "WeeklyRecurrence":
        first_day = _text(node, "FirstDayOfWeek") or "Sunday"
        if first_day not in _DAYS:
            raise _invalid(f"FirstDayOfWeek {first_day!r} is not valid.")
        return rrule.WEEKLY, {"interval": _number(node, "Interval", 1, 99), "byweekday": _weekdays(node, True),
                              "wkst": _DAYS[first_day]}
    if name == "AbsoluteMonthlyRecurrence":
        return rrule.MONTHLY, {"interval": _number(node, "Interval", 1, 99), **_day_of_month(node)}
    if name == "RelativeMonthlyRecurrence":
        return rrule.MONTHLY, {"interval": _number(node, "Interval", 1, 99), **_relative(node)}
    if name == "AbsoluteYearlyRecurrence":
        return rrule.YEARLY, {"bymonth": _month(node), **_day_of_month(node)}
    if name == "RelativeYearlyRecurrence":
        return rrule.YEARLY, {"bymonth": _month(node), **_relative(node)}
    raise _invalid(f"{name} is not a recurrence pattern.")


@dataclass(frozen=True)
class Range:
    start: date
    end: date | None = None
    count: int | None = None


def _range(node: etree._Element) -> Range:
    name = local(node.tag)
    start = _date(_text(node, "StartDate"), "StartDate")
    if name == "NoEndRecurrence":
        return Range(start)
    if name == "EndDateRecurrence":
        end = _date(_text(node, "EndDate"), "EndDate")
        if end < start:
            raise _invalid("EndDate is earlier than StartDate.")
        return Range(start, end=end)
    if name == "NumberedRecurrence":
        return Range(start, count=_number(node, "NumberOfOccurrences", 1, 999))
    raise _invalid(f"{name} is not a recurrence range.")


@dataclass(frozen=True)
class Recurrence:
    """A parsed Recurrence element: a fixed pattern (``frequency`` and rrule arguments) or a
    regenerating one (``regenerate``: the unit and interval after each completion), and its range."""

    range: Range
    frequency: int | None = None
    arguments: tuple[tuple[str, object], ...] = ()
    regenerate: tuple[str, int] | None = None


def parse(xml: str, task: bool) -> Recurrence:
    """The stored Recurrence element; EWSError when it does not describe a valid recurrence."""
    root = parse_fragment(xml)
    if len(root) != 2:
        raise _invalid("A recurrence needs a pattern and a range.")
    pattern, span = root[0], root[1]
    found_range = _range(span)
    name = local(pattern.tag)
    if name in _REGENERATION:
        if not task:
            raise _invalid(f"{name} is only valid for tasks.")
        return Recurrence(found_range, regenerate=(_REGENERATION[name], _number(pattern, "Interval", 1, 999)))
    frequency, arguments = _pattern(pattern)
    return Recurrence(found_range, frequency, tuple(arguments.items()))


@dataclass(frozen=True)
class Series:
    """The occurrences of a fixed recurrence that starts at ``first`` (local wall time) in ``zone``."""

    recurrence: Recurrence
    first: datetime
    zone: tzinfo
    duration: timedelta

    @property
    def rule(self) -> rrule.rrule:
        found = self.recurrence
        until = datetime.combine(found.range.end, datetime.max.time()) if found.range.end else None
        dtstart = datetime.combine(found.range.start, self.first.time())
        return rrule.rrule(found.frequency, dtstart=dtstart, until=until, count=found.range.count,
                           cache=True, **dict(found.arguments))

    def _utc(self, wall: datetime) -> datetime:
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def starts(self) -> Iterator[tuple[int, datetime]]:
        """Every occurrence (index, UTC start), in order; endless when the series is."""
        for index, wall in enumerate(self.rule, start=1):
            yield index, self._utc(wall)

    def starting_before(self, end: datetime) -> Iterator[tuple[int, datetime]]:
        stop = self._local(end)
        for index, wall in enumerate(self.rule, start=1):
            if wall >= stop:
                return
            yield index, self._utc(wall)

    def nth(self, index: int) -> datetime | None:
        for number, start in self.starts():
            if number == index:
                return start
            if number > index:
                break
        return None

    def last(self) -> tuple[int, datetime] | None:
        """The last occurrence of a bounded series; None when it never ends."""
        if self.recurrence.range.end is None and self.recurrence.range.count is None:
            return None
        found = None
        for found in self.starts():  # noqa: B007 - the loop finds the last one
            pass
        return found


def series(recurrence: Recurrence, start: datetime, end: datetime, zone: tzinfo) -> Series:
    """The series of a calendar item whose (first) occurrence runs from ``start`` to ``end`` (UTC)."""
    found = Series(recurrence, start.astimezone(zone).replace(tzinfo=None), zone, end - start)
    if next(found.starts(), None) is None:
        raise EWSError("ErrorRecurrenceHasNoOccurrence", "The recurrence has no occurrence.")
    return found


def next_after(recurrence: Recurrence, current: datetime, completed: date, zone: tzinfo) -> datetime | None:
    """The next start of a recurring task after its occurrence at ``current`` (a midnight in
    ``zone``) was completed on the day ``completed``: a regenerating task starts again one
    interval after that day; a fixed one moves to its next occurrence. None when the series has
    ended."""
    wall = current.astimezone(zone).replace(tzinfo=None)
    if recurrence.regenerate is not None:
        unit, interval = recurrence.regenerate
        following = datetime.combine(completed + relativedelta(**{unit: interval}), wall.time())
        if recurrence.range.end is not None and following.date() > recurrence.range.end:
            return None
        return following.replace(tzinfo=zone).astimezone(UTC)
    for _index, start in Series(recurrence, wall, zone, timedelta(0)).starts():
        if start > current:
            return start
    return None
