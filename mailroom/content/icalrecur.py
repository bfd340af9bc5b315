"""EWS recurrences (the stored RecurrenceType element) as iCalendar RRULE values and back, for
meeting messages. Every rule an EWS pattern can express is converted; one it cannot (hourly,
several BYMONTH values, the 5th Monday ...) reads as None: the attendant then keeps the first
instance as a single meeting and says so (mailroom/transport/attendant.py), as Exchange keeps
what it cannot map."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from lxml import etree

from .recipients import T

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_GROUPS = {"Day": _ICAL_DAYS, "Weekday": _ICAL_DAYS[:5], "WeekendDay": _ICAL_DAYS[5:]}
_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def _t(name: str) -> str:
    return f"{{{T}}}{name}"


def _child(node: etree._Element, name: str) -> str:
    return (node.findtext(_t(name)) or "").strip()


def _ical_days(text: str) -> list[str]:
    days: list[str] = []
    for name in text.split():
        days.extend(_GROUPS[name] if name in _GROUPS else [_ICAL_DAYS[_DAYS.index(name)]])
    return days


def to_rrule(recurrence: str, zone: tzinfo, start: time) -> dict[str, Any]:
    """The RRULE of a stored Recurrence element (already validated when it was saved). UNTIL is
    the end of the last day in UTC, as RFC 5545 asks when DTSTART has a zone."""
    root = etree.fromstring(recurrence.encode())
    pattern, span = root[0], root[1]
    name = etree.QName(pattern).localname
    rule: dict[str, Any] = {}
    if name == "DailyRecurrence":
        rule["FREQ"] = "DAILY"
    elif name == "WeeklyRecurrence":
        rule.update(FREQ="WEEKLY", BYDAY=_ical_days(_child(pattern, "DaysOfWeek")),
                    WKST=_ICAL_DAYS[_DAYS.index(_child(pattern, "FirstDayOfWeek") or "Sunday")])
    elif name.endswith("MonthlyRecurrence"):
        rule["FREQ"] = "MONTHLY"
    else:
        rule.update(FREQ="YEARLY", BYMONTH=_MONTHS.index(_child(pattern, "Month")) + 1)
    if _child(pattern, "Interval") not in ("", "1"):
        rule["INTERVAL"] = int(_child(pattern, "Interval"))
    if name.startswith("Absolute"):
        day = int(_child(pattern, "DayOfMonth"))
        rule.update({"BYMONTHDAY": day} if day <= 28 else {"BYMONTHDAY": list(range(28, day + 1)), "BYSETPOS": -1})
    elif name.startswith("Relative"):
        rule.update(BYDAY=_ical_days(_child(pattern, "DaysOfWeek")),
                    BYSETPOS=_INDEX[_child(pattern, "DayOfWeekIndex")])
    range_name = etree.QName(span).localname
    if range_name == "NumberedRecurrence":
        rule["COUNT"] = int(_child(span, "NumberOfOccurrences"))
    elif range_name == "EndDateRecurrence":
        last = date.fromisoformat(_child(span, "EndDate")[:10])
        rule["UNTIL"] = datetime.combine(last, start, tzinfo=zone).astimezone(UTC)
    return rule


_KNOWN = frozenset({"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "COUNT", "UNTIL", "WKST",
                    "BYHOUR", "BYMINUTE", "BYSECOND"})
_DAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
Pattern = tuple[str, dict[str, str]]


def from_rrule(rule: dict[str, list[Any]], start: datetime) -> str | None:
    """The Recurrence element (serialised) of an RRULE whose series starts at ``start`` (local,
    with its zone); None when EWS has no pattern for it. Every rule [MS-OXCICAL] 2.1.3.2.2's
    templates describe is mapped (BYHOUR / BYMINUTE only where they name DTSTART's time). Dates
    carry the zone's offset, as Exchange writes them."""
    if set(rule) - _KNOWN or not _at_start_time(rule, start):
        return None
    pattern = _ews_pattern(rule, start)
    count = (rule.get("COUNT") or [None])[0]
    if pattern is None or (count is not None and not 1 <= int(count) <= 999):
        return None
    root = etree.Element(_t("Recurrence"), nsmap={"t": T})
    _pattern(root, pattern[0], **pattern[1])
    first = start.date()
    offset = start.isoformat()[19:] or "Z"
    if count is not None:
        _pattern(root, "NumberedRecurrence", StartDate=first.isoformat() + offset, NumberOfOccurrences=str(count))
    elif rule.get("UNTIL"):
        until = rule["UNTIL"][0]
        if isinstance(until, datetime):
            until = until.astimezone(start.tzinfo).date() if until.tzinfo else until.date()
        _pattern(root, "EndDateRecurrence", StartDate=first.isoformat() + offset, EndDate=until.isoformat() + offset)
    else:
        _pattern(root, "NoEndRecurrence", StartDate=first.isoformat() + offset)
    return etree.tostring(root, encoding="unicode")


def _one(rule: dict[str, list[Any]], name: str) -> Any:
    """A part's single value (None when absent); ValueError when it lists several."""
    values = rule.get(name) or []
    if len(values) > 1:
        raise ValueError(name)
    return values[0] if values else None


def _at_start_time(rule: dict[str, list[Any]], start: datetime) -> bool:
    """Whether BYHOUR / BYMINUTE / BYSECOND only repeat DTSTART's time (EWS repeats that time)."""
    for name, value in (("BYHOUR", start.hour), ("BYMINUTE", start.minute), ("BYSECOND", start.second)):
        if [int(v) for v in rule.get(name) or [value]] != [value]:
            return False
    return True


def _ews_pattern(rule: dict[str, list[Any]], start: datetime) -> Pattern | None:
    """The EWS pattern element's name and children of a rule; None when there is none."""
    try:
        freq = str(_one(rule, "FREQ") or "").upper()
        interval = int(_one(rule, "INTERVAL") or 1)
        setpos = _one(rule, "BYSETPOS")
        month = int(_one(rule, "BYMONTH") or start.month)
    except ValueError:
        return None
    if freq == "MONTHLY" and rule.get("BYMONTH"):
        return None  # some months only
    days, ordinal = _by_day(rule.get("BYDAY") or [])
    position = next((k for k, v in _INDEX.items() if v == (ordinal or setpos)), None)
    if days is None or (ordinal and setpos) or not 1 <= interval <= 999:
        return None
    if freq in ("DAILY", "WEEKLY"):
        if rule.get("BYMONTHDAY") or rule.get("BYMONTH") or setpos is not None or ordinal:
            return None
        if freq == "DAILY" and not days:
            return "DailyRecurrence", {"Interval": str(interval)}
        if interval > 99 or (freq == "DAILY" and interval != 1):  # DAILY;BYDAY=...: those days each week
            return None
        wkst = str(_one(rule, "WKST") or "SU").upper()
        return "WeeklyRecurrence", {"Interval": str(interval),
                                    "DaysOfWeek": _ews_days(days or [_ICAL_DAYS[start.weekday()]], groups=False),
                                    "FirstDayOfWeek": _DAYS[_ICAL_DAYS.index(wkst)] if wkst in _ICAL_DAYS else "Sunday"}
    if freq == "YEARLY" and interval > 1:  # every N years: every 12 N months, from the first one
        if 12 * interval > 99 or month != start.month:
            return None
        freq, interval = "MONTHLY", 12 * interval
    if freq == "MONTHLY" and interval <= 99:
        if days:
            return ("RelativeMonthlyRecurrence", {"Interval": str(interval), "DaysOfWeek": _ews_days(days),
                                                  "DayOfWeekIndex": position}) if position else None
        day = _month_day(rule, start, setpos)
        return ("AbsoluteMonthlyRecurrence", {"Interval": str(interval), "DayOfMonth": str(day)}) if day else None
    if freq == "YEARLY":
        if days:
            return ("RelativeYearlyRecurrence", {"DaysOfWeek": _ews_days(days), "DayOfWeekIndex": position,
                                                 "Month": _MONTHS[month - 1]}) if position else None
        day = _month_day(rule, start, setpos)
        return ("AbsoluteYearlyRecurrence", {"DayOfMonth": str(day), "Month": _MONTHS[month - 1]}) if day else None
    return None


def _by_day(values: list[Any]) -> tuple[list[str] | None, int | None]:
    """BYDAY's days and its ordinal (2MO: the second Monday; one day only); None days when EWS
    cannot say it (several days with ordinals)."""
    days, ordinals = [], []
    for value in values:
        found = _DAY.match(str(value).upper())
        if found is None:
            return None, None
        days.append(found.group(2))
        ordinals.append(int(found.group(1)) if found.group(1) else None)
    if any(ordinals) and len(days) > 1:
        return None, None
    return days, ordinals[0] if ordinals else None


def _month_day(rule: dict[str, list[Any]], start: datetime, setpos: Any) -> int | None:
    """The EWS DayOfMonth of BYMONTHDAY: one day, -1 (the last: 31, which EWS keeps to the month's
    last day) or the 28..N with BYSETPOS=-1 that stands for N in shorter months."""
    values = [int(v) for v in rule.get("BYMONTHDAY") or [start.day]]
    if setpos is not None:
        return values[-1] if int(setpos) == -1 and values == list(range(28, values[-1] + 1)) else None
    if len(values) != 1:
        return None
    return 31 if values[0] == -1 else values[0] if 1 <= values[0] <= 31 else None


def _ews_days(days: list[str], groups: bool = True) -> str:
    """EWS DaysOfWeek: a group name (Weekday ...) where a monthly or yearly pattern may use one."""
    for group, members in _GROUPS.items():
        if groups and sorted(days) == sorted(members) and len(days) > 1:
            return group
    return " ".join(_DAYS[_ICAL_DAYS.index(d)] for d in days)


def _pattern(root: etree._Element, name: str, **children: str) -> None:
    node = etree.SubElement(root, _t(name))
    for child, text in children.items():
        etree.SubElement(node, _t(child)).text = text
