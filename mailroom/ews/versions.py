"""RequestServerVersion handling and the version this server reports."""

from __future__ import annotations

# Ordered oldest to newest, as types.xsd ExchangeVersionType lists them.
VERSIONS: tuple[str, ...] = (
    "Exchange2007", "Exchange2007_SP1", "Exchange2009", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2",
    "Exchange2012", "Exchange2013", "Exchange2013_SP1", "Exchange2015", "Exchange2016",
    "V2015_10_05", "V2016_01_06", "V2016_04_13", "V2016_07_13", "V2016_10_10", "V2017_01_07", "V2017_04_14",
    "V2017_07_11", "V2017_10_09", "V2018_01_08",
)
_RANK = {name: i for i, name in enumerate(VERSIONS)}
DEFAULT = "Exchange2007_SP1"  # what Exchange assumes when a request names no version
NEWEST = "Exchange2016"

# Exchange Server 2016 CU23: 15.1.2507.6. exchangelib maps 15.1 builds to Exchange2016.
BUILD = {"MajorVersion": "15", "MinorVersion": "1", "MajorBuildNumber": "2507", "MinorBuildNumber": "6"}


def is_known(version: str) -> bool:
    return version in _RANK


def at_least(version: str, minimum: str) -> bool:
    """True when ``version`` is ``minimum`` or newer (V2_* aliases count as newer than 2016)."""
    return _RANK.get(version, _RANK[NEWEST]) >= _RANK[minimum]


def reported(requested: str) -> str:
    """The Version attribute of ServerVersionInfo: echo a known requested version (exchangelib and
    Thunderbird keep what they asked for), else the newest this server speaks."""
    return requested if is_known(requested) else NEWEST
