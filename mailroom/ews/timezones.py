"""Windows time zone ids (as EWS uses them) mapped to IANA zones through CLDR's windowsZones
table, which tzlocal ships and keeps current; and EWS TimeZoneDefinitions built from tzdata.

A definition describes a zone the way Windows does: eras, each with a yearly rule (a standard
offset and, with daylight saving time, the two recurring transitions between them), and the
moments one era gives way to the next. The eras are read off the zone itself (zoneinfo, so they
agree with how the server reads the TimeZoneContext) for the years 1970 to 2037; the last rule
holds after that. A year whose changes are not one there-and-back pair (a lasting change of
offset, Ramadan breaks) is told as it happened: one era per change.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lxml import etree
from tzlocal.windows_tz import tz_win, win_tz

from .recurrence import DAY_INDEXES, MONTHS
from .xml import sub, t

FIRST_YEAR, LAST_YEAR = 1970, 2037
_WEEK = 7 * 86400
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@cache
def zone_for_windows_id(windows_id: str) -> tzinfo:
    """The IANA zone for a Windows id; UTC for ids CLDR does not know (as Exchange falls back)."""
    name = win_tz.get(windows_id)
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        return UTC


def windows_id_for(zone_name: str) -> str | None:
    return tz_win.get(zone_name)


def windows_ids() -> list[str]:
    return sorted(win_tz)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A yearly transition: the ``occurrence``-th (-1: last) ``weekday`` of ``month`` at ``time``
    on the clock in force before it."""

    month: int
    weekday: int  # 0 = Monday
    occurrence: int
    time: timedelta


@dataclass(frozen=True, slots=True)
class Rule:
    """A year's shape: the standard offset from UTC and, with daylight saving time, its offset and
    the transitions into and out of it."""

    standard: timedelta
    daylight: timedelta | None = None
    to_daylight: Recurrence | None = None
    to_standard: Recurrence | None = None


@dataclass(frozen=True, slots=True)
class Era:
    start: datetime | None  # the wall-clock time it begins (None: the first era, since ever)
    rule: Rule

    @property
    def label(self) -> str:
        """Names the era's periods: its first year, or its first day when it begins within a year."""
        if self.start is None:
            return str(FIRST_YEAR)
        return str(self.start.year) if self.start == datetime(self.start.year, 1, 1) else self.start.date().isoformat()


@dataclass(frozen=True, slots=True)
class _Change:
    at: int  # UTC timestamp
    before: timedelta
    after: timedelta

    @property
    def wall(self) -> datetime:
        """The local time of the change on the clock in force before it."""
        return datetime(1970, 1, 1) + timedelta(seconds=self.at) + self.before


def _offset(zone: tzinfo, at: int) -> timedelta:
    return datetime.fromtimestamp(at, zone).utcoffset() or timedelta(0)


def _changes(zone: tzinfo) -> list[_Change]:
    """Every change of the zone's UTC offset from FIRST_YEAR to the end of LAST_YEAR, found by
    sampling each week and bisecting to the second."""
    found: list[_Change] = []
    at = int(datetime(FIRST_YEAR, 1, 1, tzinfo=UTC).timestamp()) - _WEEK
    end = int(datetime(LAST_YEAR + 1, 1, 2, tzinfo=UTC).timestamp())
    current = _offset(zone, at)
    while at < end:
        following = _offset(zone, at + _WEEK)
        if following != current:
            low, high = at, at + _WEEK
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if _offset(zone, middle) == current else (low, middle)
            found.append(_Change(high, current, _offset(zone, high)))
            at, current = high, _offset(zone, high)
            continue
        at += _WEEK
    return found


def _recurrence(change: _Change) -> Recurrence:
    wall = change.wall
    last_day = calendar.monthrange(wall.year, wall.month)[1]
    occurrence = -1 if wall.day + 7 > last_day else (wall.day - 1) // 7 + 1
    return Recurrence(wall.month, wall.weekday(), occurrence, wall - wall.replace(hour=0, minute=0, second=0))


def _year_eras(year: int, changes: list[_Change], offset_in_year: timedelta) -> list[Era]:
    """The year as eras: a yearly rule from January 1st when it has daylight saving time the usual
    way (two changes, there and back); else the offset at its start and after each change."""
    new_year = datetime(year, 1, 1)
    if not changes:
        return [Era(new_year, Rule(offset_in_year))]
    if len(changes) == 2 and changes[0].before == changes[1].after != changes[0].after:
        up, down = sorted(changes, key=lambda c: c.after, reverse=True)
        return [Era(new_year, Rule(down.after, up.after, _recurrence(up), _recurrence(down)))]
    return [Era(new_year, Rule(changes[0].before))] + [Era(c.wall, Rule(c.after)) for c in changes]


@cache
def eras(zone_name: str) -> tuple[Era, ...]:
    """The zone as a sequence of eras with yearly rules (consecutive equal years are one era)."""
    zone = ZoneInfo(zone_name)
    by_year: dict[int, list[_Change]] = {}
    for change in _changes(zone):
        by_year.setdefault(change.wall.year, []).append(change)
    found: list[Era] = []
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        midyear = _offset(zone, int(datetime(year, 7, 1, tzinfo=UTC).timestamp()))
        for era in _year_eras(year, by_year.get(year, []), midyear):
            if not found:
                found.append(Era(None, era.rule))
            elif found[-1].rule != era.rule:
                found.append(era)
    return tuple(found)


def duration(value: timedelta) -> str:
    """An xs:duration of whole seconds (``PT2H``, ``-PT5H30M``, ``PT0H``)."""
    seconds = int(value.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    return f"{sign}PT{text or '0H'}"


def display_name(windows_id: str) -> str:
    """A Windows-style display name: ``(UTC+01:00) Berlin``."""
    zone_name = win_tz[windows_id]
    standard = eras(zone_name)[-1].rule.standard
    minutes = int(standard.total_seconds()) // 60
    offset = "" if not minutes else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"(UTC{offset}) {zone_name.rsplit('/', 1)[-1].replace('_', ' ')}"


def definition(parent: etree._Element, windows_id: str, full: bool, tag: str = "TimeZoneDefinition") -> etree._Element:
    """Append the zone's TimeZoneDefinition (or another element of that type, StartTimeZone ...);
    with ``full``, its Periods, TransitionsGroups and Transitions: one group per era, entered at
    the era's start."""
    node = sub(parent, t(tag), Id=windows_id, Name=display_name(windows_id))
    if not full:
        return node
    found = eras(win_tz[windows_id])
    width = len(str(len(found) - 1))  # group ids that also sort as text (exchangelib sorts them so)
    periods, groups = sub(node, t("Periods")), sub(node, t("TransitionsGroups"))
    transitions = sub(node, t("Transitions"))
    for n, era in enumerate(found):
        group_id = str(n).zfill(width)
        standard = f"trule:Microsoft/Registry/{windows_id}/{era.label}-Standard"
        sub(periods, t("Period"), Bias=duration(-era.rule.standard), Name="Standard", Id=standard)
        group = sub(groups, t("TransitionsGroup"), Id=group_id)
        rule = era.rule
        if rule.daylight is None or rule.to_daylight is None or rule.to_standard is None:
            sub(sub(group, t("Transition")), t("To"), standard, Kind="Period")
        else:
            daylight = f"trule:Microsoft/Registry/{windows_id}/{era.label}-Daylight"
            sub(periods, t("Period"), Bias=duration(-rule.daylight), Name="Daylight", Id=daylight)
            _recurring(group, daylight, rule.to_daylight)
            _recurring(group, standard, rule.to_standard)
        if era.start is None:
            sub(sub(transitions, t("Transition")), t("To"), group_id, Kind="Group")
        else:
            change = sub(transitions, t("AbsoluteDateTransition"))
            sub(change, t("To"), group_id, Kind="Group")
            sub(change, t("DateTime"), era.start.isoformat())
    return node


def _recurring(group: etree._Element, period_id: str, when: Recurrence) -> None:
    node = sub(group, t("RecurringDayTransition"))
    sub(node, t("To"), period_id, Kind="Period")
    sub(node, t("TimeOffset"), duration(when.time))
    sub(node, t("Month"), str(when.month))
    sub(node, t("DayOfWeek"), DAY_NAMES[when.weekday])
    sub(node, t("Occurrence"), str(when.occurrence))


def meeting_time_zone(parent: etree._Element, windows_id: str, at: datetime | None = None) -> etree._Element:
    """The Exchange 2007 MeetingTimeZone (TimeZoneType) as Exchange 2007 wrote it: the standard
    bias and, for a zone with daylight saving time, the yearly changes into standard and daylight
    time (each an offset from that bias, a RelativeYearlyRecurrence and the time on the clock in
    force before it), from the rule in force at ``at`` (UTC; the latest rule without it)."""
    rule = _rule_at(win_tz[windows_id], at)
    node = sub(parent, t("MeetingTimeZone"), TimeZoneName=windows_id)
    sub(node, t("BaseOffset"), duration(-rule.standard))
    if rule.daylight is not None and rule.to_daylight is not None and rule.to_standard is not None:
        _time_change(node, "Standard", timedelta(0), rule.to_standard)
        _time_change(node, "Daylight", rule.standard - rule.daylight, rule.to_daylight)
    return node


def _rule_at(zone_name: str, at: datetime | None) -> Rule:
    """The yearly rule of the era in force at ``at`` (UTC), or of the last era."""
    found = eras(zone_name)
    if at is None:
        return found[-1].rule
    wall = at.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)
    return next(era for era in reversed(found) if era.start is None or era.start <= wall).rule


def _time_change(parent: etree._Element, tag: str, offset: timedelta, when: Recurrence) -> None:
    """A TimeChangeType: the offset from BaseOffset, the yearly day of the change and its time."""
    node = sub(parent, t(tag))
    sub(node, t("Offset"), duration(offset))
    yearly = sub(node, t("RelativeYearlyRecurrence"))
    sub(yearly, t("DaysOfWeek"), DAY_NAMES[when.weekday])
    sub(yearly, t("DayOfWeekIndex"), next(k for k, v in DAY_INDEXES.items() if v == when.occurrence))
    sub(yearly, t("Month"), MONTHS[when.month - 1])
    seconds = int(when.time.total_seconds()) % 86400
    sub(node, t("Time"), f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}")


class RuleZone(tzinfo):
    """A zone given as one yearly rule, the way GetUserAvailability's SerializableTimeZone gives it."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def _in_daylight(self, dt: datetime) -> bool:
        rule = self.rule
        if rule.daylight is None or rule.to_daylight is None or rule.to_standard is None:
            return False
        wall = dt.replace(tzinfo=None)
        begins, ends = _moment(wall.year, rule.to_daylight), _moment(wall.year, rule.to_standard)
        return begins <= wall < ends if begins < ends else not ends <= wall < begins

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if dt is not None and self._in_daylight(dt) and self.rule.daylight is not None:
            return self.rule.daylight
        return self.rule.standard

    def dst(self, dt: datetime | None) -> timedelta:
        return self.utcoffset(dt) - self.rule.standard

    def tzname(self, dt: datetime | None) -> str:
        return f"UTC{duration(self.utcoffset(dt))}"


def _moment(year: int, when: Recurrence) -> datetime:
    """The wall-clock time of a yearly transition in ``year``."""
    last_day = calendar.monthrange(year, when.month)[1]
    days = [d for d in range(1, last_day + 1) if calendar.weekday(year, when.month, d) == when.weekday]
    day = days[-1] if when.occurrence == -1 or when.occurrence > len(days) else days[when.occurrence - 1]
    return datetime(year, when.month, day) + when.time
