"""Calendar items: their time zones, recurring series, occurrences and exceptions.

A recurring master keeps its pattern (``Recurrence``) and, in properties clients never see, its
exceptions (``_Exceptions``: instance index -> the properties and body that differ) and deleted
occurrences (``_Deleted``). Occurrences are not stored: they are computed from the master, and
their ids name the master and the instance index. ``_SpanStart``/``_SpanEnd`` (columns in the
store) hold the time an item or a whole series covers, so a calendar view reads only what
overlaps it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from mailroom.content import recipients
from mailroom.content.recipients import Address
from mailroom.store import Store, ids
from mailroom.store.model import Body, Item, ItemChanges, Mailbox
from mailroom.store.query import And, Compare, Prop, Sort

from . import recurrence, timezones
from .context import Context
from .dates import parse_utc
from .errors import EWSError
from .xml import parse_fragment, sub, t

_ZONE_ELEMENTS = ("StartTimeZone", "EndTimeZone", "MeetingTimeZone", "StartTimeZoneId", "EndTimeZoneId")
# A series's own bookkeeping: never copied onto its occurrences.
_MASTER_ONLY = frozenset({"Recurrence", "_Exceptions", "_Deleted", "_SpanStart", "_SpanEnd"})
_TEXT = "%Y-%m-%dT%H:%M:%SZ"


def is_calendar(props: dict[str, Any]) -> bool:
    return str(props.get("ItemClass", "")).startswith("IPM.Appointment")


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_TEXT)


def context_zone_id(ctx: Context) -> str:
    """The Windows id of the caller's TimeZoneContext zone (UTC without one)."""
    if isinstance(ctx.tz, ZoneInfo):
        return timezones.windows_id_for(ctx.tz.key) or "UTC"
    return "UTC"


def _zone_id_of(value: str | None, attribute: str) -> str | None:
    if not value:
        return None
    if not value.lstrip().startswith("<"):
        return value  # StartTimeZoneId holds the id itself
    return parse_fragment(value).get(attribute) or None


def _take_zones(props: dict[str, Any]) -> tuple[str | None, str | None]:
    """The start and end zone ids the client gave, in whichever form its version uses; the
    elements themselves are not kept (they are rendered from the ids, per version)."""
    given = {name: props.pop(name, None) for name in _ZONE_ELEMENTS}
    start = (_zone_id_of(given["StartTimeZoneId"], "") or _zone_id_of(given["StartTimeZone"], "Id")
             or _zone_id_of(given["MeetingTimeZone"], "TimeZoneName"))
    end = _zone_id_of(given["EndTimeZoneId"], "") or _zone_id_of(given["EndTimeZone"], "Id")
    for zone_id in (start, end):
        if zone_id is not None and zone_id not in timezones.windows_ids():
            raise EWSError("ErrorCalendarInvalidTimeZone", f"{zone_id!r} is not a time zone this server knows.")
    return start, end


def zone(props: dict[str, Any]) -> tzinfo:
    """The zone a series repeats in: its start time zone."""
    return timezones.zone_for_windows_id(props.get("_StartZone") or "UTC")


def normalise(props: dict[str, Any], ctx: Context, mailbox: Mailbox, creating: bool) -> None:
    """Complete a calendar item's properties as Exchange does on save: time zones, defaults, the
    first occurrence of a series as its Start/End, and the span it covers. EWSError on an
    invalid item."""
    start_zone, end_zone = _take_zones(props)
    complete(props, mailbox, creating, start_zone, end_zone, context_zone_id(ctx))


def complete(props: dict[str, Any], mailbox: Mailbox, creating: bool, start_zone: str | None, end_zone: str | None,
             default_zone: str) -> None:
    """What ``normalise`` does once the zone ids are known (the calendar attendant starts here)."""
    if creating or start_zone:
        props["_StartZone"] = start_zone or props.get("_StartZone") or default_zone
    if creating or end_zone:
        props["_EndZone"] = end_zone or props.get("_EndZone") or props["_StartZone"]
    if creating:
        props.setdefault("UID", uuid.uuid4().hex.upper())
        props.setdefault("LegacyFreeBusyStatus", "Busy")
        props.setdefault("IsAllDayEvent", False)
        props.setdefault("Organizer", recipients.build("Organizer", [Address(mailbox.display_name, mailbox.address)],
                                                      single=True))
        props.setdefault("MyResponseType", "Organizer")
    props["IsMeeting"] = any(props.get(name) for name in ("RequiredAttendees", "OptionalAttendees", "Resources"))
    if "Start" not in props or "End" not in props:
        raise EWSError("ErrorCalendarInvalidPropertyValue", "A calendar item needs Start and End.")
    start, end = parse_utc(props["Start"]), parse_utc(props["End"])
    if end < start:
        raise EWSError("ErrorCalendarEndDateIsEarlierThanStartDate", "End is earlier than Start.")
    if props.get("Recurrence"):
        series = recurrence.series(recurrence.parse(props["Recurrence"], task=False), start, end, zone(props))
        _, first = next(series.starts())
        props["Start"], props["End"] = _text(first), _text(first + series.duration)
        props["CalendarItemType"] = "RecurringMaster"
        last = series.last()
        props["_SpanStart"] = props["Start"]
        props["_SpanEnd"] = _text(last[1] + series.duration) if last else recurrence.NO_END
        props["_SpanStart"], props["_SpanEnd"] = _widened(props, props["_SpanStart"], props["_SpanEnd"])
    else:
        for name in ("_Exceptions", "_Deleted"):
            props.pop(name, None)
        props["CalendarItemType"] = "Single"
        props["_SpanStart"], props["_SpanEnd"] = props["Start"], props["End"]
    props["IsRecurring"] = False


def _widened(props: dict[str, Any], low: str, high: str) -> tuple[str, str]:
    """The span grown to take in exceptions moved outside the series's own range."""
    for exception in (props.get("_Exceptions") or {}).values():
        changed = exception["props"]
        low = min(low, changed.get("Start", low))
        high = max(high, changed.get("End", high))
    return low, high


def series_changes(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether an update redefines the series (its exceptions and deletions no longer apply)."""
    return any(old.get(name) != new.get(name) for name in ("Recurrence", "Start", "End", "_StartZone"))


# -- occurrences ------------------------------------------------------------------------------
def _series(master: Item) -> recurrence.Series:
    props = master.props
    return recurrence.Series(recurrence.parse(props["Recurrence"], task=False),
                             parse_utc(props["Start"]).astimezone(zone(props)).replace(tzinfo=None), zone(props),
                             parse_utc(props["End"]) - parse_utc(props["Start"]))


def _instance(master: Item, index: int, start: datetime, duration: timedelta) -> Item:
    """The occurrence ``index`` of the series, starting at ``start``, with its exception applied."""
    props = {k: v for k, v in master.props.items() if k not in _MASTER_ONLY}
    original = _text(start)
    props.update(Start=original, End=_text(start + duration), OriginalStart=original, RecurrenceId=original,
                 CalendarItemType="Occurrence", IsRecurring=True, _Instance=index)
    body = master.body
    exception = (master.props.get("_Exceptions") or {}).get(str(index))
    if exception is not None:
        props.update(exception["props"])
        props["CalendarItemType"] = "Exception"
        if exception.get("body"):
            body = Body(*exception["body"])
    return replace(master, props=props, body=body)


def is_occurrence(item: Item) -> bool:
    return "_Instance" in item.props


def occurrence(master: Item, index: int) -> Item:
    """The occurrence with this InstanceIndex; the schema's error codes when there is none."""
    if not master.props.get("Recurrence"):
        raise EWSError("ErrorCalendarCannotUseIdForRecurringMasterId", "The item is not a recurring master.")
    if index < 1:
        raise EWSError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", "InstanceIndex starts at 1.")
    series = _series(master)
    start = series.nth(index)
    if start is None:
        raise EWSError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                       f"The series has no occurrence {index}.")
    if index in (master.props.get("_Deleted") or []):
        raise EWSError("ErrorCalendarOccurrenceIsDeletedFromRecurrence", f"Occurrence {index} was deleted.")
    return _instance(master, index, start, series.duration)


def occurrence_at(master: Item, original_start: datetime, deleted: bool = False) -> Item | None:
    """The occurrence a RECURRENCE-ID names by its original start (for an all-day series, its
    day); None when the series has none there or it was deleted (unless ``deleted``: a change
    recorded on it restores it)."""
    series = _series(master)
    all_day = bool(master.props.get("IsAllDayEvent"))
    for index, start in series.starting_before(original_start + timedelta(days=1)):
        if start == original_start or (all_day and start.astimezone(series.zone).date() == original_start.date()):
            if index in (master.props.get("_Deleted") or []) and not deleted:
                return None
            return _instance(master, index, start, series.duration)
    return None


def is_deleted(master: Item, occurrence_item: Item) -> bool:
    return occurrence_item.props["_Instance"] in (master.props.get("_Deleted") or [])


def expand(master: Item, start: datetime, end: datetime) -> Iterator[Item]:
    """The occurrences of a series that overlap [start, end), exceptions where they were moved to."""
    series = _series(master)
    deleted = set(master.props.get("_Deleted") or [])
    exceptions = master.props.get("_Exceptions") or {}
    for index, begins in series.starting_before(end):
        if index in deleted or str(index) in exceptions or begins + series.duration <= start:
            continue
        if begins + series.duration > start or (series.duration == timedelta(0) and begins >= start):
            yield _instance(master, index, begins, series.duration)
    for index in exceptions:
        found = series.nth(int(index))
        if found is None:
            continue
        item = _instance(master, int(index), found, series.duration)
        if parse_utc(item.props["Start"]) < end and parse_utc(item.props["End"]) > start:
            yield item


def view(store: Store, mailbox: Mailbox, folder_id: int, start: datetime, end: datetime,
         with_extended: bool = False, hide_private: bool = False) -> list[Item]:
    """Single items and occurrences overlapping [start, end), by start (without private items
    when ``hide_private``: free/busy still counts them). Only items whose span overlaps the window
    are read (an index on the span)."""
    window = And((Compare(Prop("_SpanStart", "datetime"), "lt", _text(end)),
                  Compare(Prop("_SpanEnd", "datetime"), "gt", _text(start))))
    found, _total = store.items.find(mailbox, folder_id, where=window, sort=[Sort(Prop("_SpanStart", "datetime"))],
                                     with_extended=with_extended, hide_private=hide_private)
    shown: list[Item] = []
    for item in found:
        if item.props.get("Recurrence"):
            shown.extend(expand(item, start, end))
        else:
            shown.append(item)
    return sorted(shown, key=lambda i: (i.props["Start"], i.props["End"], i.id, i.props.get("_Instance", 0)))


# -- changing occurrences ----------------------------------------------------------------------
def exception_changes(master: Item, occurrence_item: Item, changes: ItemChanges) -> ItemChanges:
    """The change to the master that records ``changes`` to one of its occurrences as an exception
    (an occurrence deleted before is back)."""
    index = occurrence_item.props["_Instance"]
    exceptions = dict(master.props.get("_Exceptions") or {})
    previous = exceptions.get(str(index), {"props": {}, "body": None})
    changed = {**previous["props"], **{k: v for k, v in changes.set_props.items() if not k.startswith("_")}}
    for name in changes.delete_props:
        changed[name] = None
    start, end = changed.get("Start", occurrence_item.props["Start"]), changed.get("End", occurrence_item.props["End"])
    if parse_utc(end) < parse_utc(start):
        raise EWSError("ErrorCalendarEndDateIsEarlierThanStartDate", "End is earlier than Start.")
    body = previous["body"]
    if changes.body is not None:
        body = [changes.body.body_type, changes.body.text]
    elif changes.delete_body:
        body = ["Text", ""]
    exceptions[str(index)] = {"props": {k: v for k, v in changed.items() if v is not None}, "body": body}
    if is_deleted(master, occurrence_item):
        return _with_span(master, {"_Exceptions": exceptions,
                                   "_Deleted": [i for i in master.props["_Deleted"] if i != index]})
    return _with_span(master, {"_Exceptions": exceptions})


def deletion_changes(master: Item, index: int) -> ItemChanges:
    """The change to the master that deletes one occurrence."""
    exceptions = {k: v for k, v in (master.props.get("_Exceptions") or {}).items() if k != str(index)}
    deleted = sorted({*(master.props.get("_Deleted") or []), index})
    return _with_span(master, {"_Exceptions": exceptions, "_Deleted": deleted})


def record(store: Store, mailbox: Mailbox, item: Item, changes: ItemChanges) -> Item:
    """Save ``changes`` to a calendar item, or to one occurrence of it (as an exception of its series)."""
    if not is_occurrence(item):
        return store.items.update(mailbox, item.id, changes)
    master = store.items.get(mailbox, item.id)
    saved = store.items.update(mailbox, item.id, exception_changes(master, item, changes))
    return occurrence(saved, item.props["_Instance"])


def discard(store: Store, mailbox: Mailbox, item: Item, trash: int | None = None) -> None:
    """Take a calendar item out of the calendar (to ``trash``, or deleted); an occurrence is
    deleted from its series."""
    if is_occurrence(item):
        master = store.items.get(mailbox, item.id, body=False, attachments=False)
        store.items.update(mailbox, item.id, deletion_changes(master, item.props["_Instance"]))
    else:
        store.items.move_or_delete(mailbox, item.id, trash)


def _with_span(master: Item, set_props: dict[str, Any]) -> ItemChanges:
    low, high = _widened({**master.props, **set_props}, master.props["Start"], master.props["_SpanEnd"])
    return ItemChanges(set_props={**set_props, "_SpanStart": low, "_SpanEnd": max(high, master.props["_SpanEnd"])},
                       keep_mime=True)


# -- rendering ---------------------------------------------------------------------------------
def occurrence_info(parent: etree._Element, tag: str, mailbox: Mailbox, item: Item, change_key: str,
                    with_original: bool = True) -> None:
    """An OccurrenceInfoType element (FirstOccurrence, LastOccurrence, a modified occurrence)."""
    node = sub(parent, t(tag))
    sub(node, t("ItemId"), Id=ids.occurrence_id(mailbox.guid, item.id, item.props["_Instance"]), ChangeKey=change_key)
    sub(node, t("Start"), item.props["Start"])
    sub(node, t("End"), item.props["End"])
    if with_original:
        sub(node, t("OriginalStart"), item.props["OriginalStart"])


def first_and_last(master: Item) -> tuple[Item, Item | None]:
    series = _series(master)
    index, start = next(series.starts())
    last = series.last()
    return (_instance(master, index, start, series.duration),
            _instance(master, last[0], last[1], series.duration) if last else None)


def modified(master: Item) -> list[Item]:
    series = _series(master)
    found = []
    for index in sorted(int(i) for i in master.props.get("_Exceptions") or {}):
        start = series.nth(index)
        if start is not None:
            found.append(_instance(master, index, start, series.duration))
    return found


def deleted_starts(master: Item) -> list[str]:
    series = _series(master)
    return [_text(start) for index in master.props.get("_Deleted") or []
            if (start := series.nth(index)) is not None]
