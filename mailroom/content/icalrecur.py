"""EWS recurrences (the stored RecurrenceType element) as iCalendar RRULE values and back, for
meeting messages. Only the patterns both sides can say are converted: a rule EWS cannot express
(hourly, several BYMONTH values ...) reads as None, and the meeting is kept as a single one."""

from __future__ import annotations

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


def from_rrule(rule: dict[str, list[Any]], start: datetime) -> str | None:
    """The Recurrence element (serialised) of an RRULE whose series starts at ``start`` (local,
    with its zone); None when EWS has no pattern for it. Dates carry the zone's offset, as
    Exchange writes them."""
    first = start.date()
    offset = start.isoformat()[19:] or "Z"
    freq = (rule.get("FREQ") or [""])[0]
    interval = str((rule.get("INTERVAL") or [1])[0])
    days = [str(d).upper() for d in rule.get("BYDAY") or []]
    if any(d not in _ICAL_DAYS for d in days) or set(rule) - {"FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYMONTH",
                                                              "BYSETPOS", "COUNT", "UNTIL", "WKST"}:
        return None  # BYDAY with an ordinal (2MO), BYHOUR ...: not an EWS pattern
    root = etree.Element(_t("Recurrence"), nsmap={"t": T})
    setpos = (rule.get("BYSETPOS") or [None])[0]
    position = next((k for k, v in _INDEX.items() if v == setpos), None)
    month = (rule.get("BYMONTH") or [first.month])[0]
    month_day = max(rule.get("BYMONTHDAY") or [first.day])
    if freq == "DAILY" and not days:
        _pattern(root, "DailyRecurrence", Interval=interval)
    elif freq == "WEEKLY":
        wkst = str((rule.get("WKST") or ["SU"])[0]).upper()
        _pattern(root, "WeeklyRecurrence", Interval=interval,
                 DaysOfWeek=_ews_days(days or [_ICAL_DAYS[first.weekday()]], groups=False),
                 FirstDayOfWeek=_DAYS[_ICAL_DAYS.index(wkst)] if wkst in _ICAL_DAYS else "Sunday")
    elif freq == "MONTHLY" and days and position:
        _pattern(root, "RelativeMonthlyRecurrence", Interval=interval, DaysOfWeek=_ews_days(days),
                 DayOfWeekIndex=position)
    elif freq == "MONTHLY" and not days:
        _pattern(root, "AbsoluteMonthlyRecurrence", Interval=interval, DayOfMonth=str(month_day))
    elif freq == "YEARLY" and days and position:
        _pattern(root, "RelativeYearlyRecurrence", DaysOfWeek=_ews_days(days), DayOfWeekIndex=position,
                 Month=_MONTHS[month - 1])
    elif freq == "YEARLY" and not days:
        _pattern(root, "AbsoluteYearlyRecurrence", DayOfMonth=str(month_day), Month=_MONTHS[month - 1])
    else:
        return None
    if rule.get("COUNT"):
        _pattern(root, "NumberedRecurrence", StartDate=first.isoformat() + offset,
                 NumberOfOccurrences=str(rule["COUNT"][0]))
    elif rule.get("UNTIL"):
        until = rule["UNTIL"][0]
        if isinstance(until, datetime):
            until = until.astimezone(start.tzinfo).date() if until.tzinfo else until.date()
        _pattern(root, "EndDateRecurrence", StartDate=first.isoformat() + offset, EndDate=until.isoformat() + offset)
    else:
        _pattern(root, "NoEndRecurrence", StartDate=first.isoformat() + offset)
    return etree.tostring(root, encoding="unicode")


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
