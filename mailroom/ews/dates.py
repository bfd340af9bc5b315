"""xs:dateTime in and out. Stored values are UTC text; naive request values are read in the
caller's TimeZoneContext zone, as Exchange does."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from .errors import EWSError


def parse_datetime(value: str) -> datetime:
    """An xs:dateTime (or xs:date) as given: aware when it carries an offset or Z, else naive."""
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError as exc:
        raise EWSError("ErrorInvalidValueForProperty", f"not a valid dateTime: {value!r}") from exc


def to_utc_text(value: str, tz: tzinfo) -> str:
    """Normalise an xs:dateTime (or xs:date) to ``YYYY-MM-DDTHH:MM:SSZ``."""
    parsed = parse_datetime(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def typed_value(kind: str, text: str, tz: tzinfo) -> object:
    """``text`` as the Python value a property of this kind is kept as (bool, int, float, UTC
    datetime text or the text itself); ValueError (or EWSError for dates) when it is not one."""
    if kind == "bool":
        flag = text.strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise ValueError(text)
        return flag in ("true", "1")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "datetime":
        return to_utc_text(text, tz)
    return text
