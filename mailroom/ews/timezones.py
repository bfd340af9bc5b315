"""Windows time zone ids (as EWS uses them) mapped to IANA zones through CLDR's windowsZones
table, which tzlocal ships and keeps current."""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import tz_win, win_tz


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
