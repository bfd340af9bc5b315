"""RequestServerVersion handling and the version this server reports."""

from __future__ import annotations

from .errors import SOAPFault

# Ordered oldest to newest, as types.xsd ExchangeVersionType lists them.
VERSIONS: tuple[str, ...] = (
    "Exchange2007", "Exchange2007_SP1", "Exchange2009", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2",
    "Exchange2012", "Exchange2013", "Exchange2013_SP1", "Exchange2015", "Exchange2016",
    "V2015_10_05", "V2016_01_06", "V2016_04_13", "V2016_07_13", "V2016_10_10", "V2017_01_07", "V2017_04_14",
    "V2017_07_11", "V2017_10_09", "V2018_01_08",
)
_RANK = {name: i for i, name in enumerate(VERSIONS)}
# "Requests that do not include version headers are handled as requests from the initial release
# version of Exchange 2007" (EWS reference, Versioning Requests).
DEFAULT = "Exchange2007"
NEWEST = "Exchange2016"

# Exchange Server 2016 CU23: 15.1.2507.6. exchangelib maps 15.1 builds to Exchange2016.
BUILD = {"MajorVersion": "15", "MinorVersion": "1", "MajorBuildNumber": "2507", "MinorBuildNumber": "6"}


def is_known(version: str) -> bool:
    return version in _RANK


def require_known(version: str) -> None:
    """Refuse a version this server does not speak with the fault clients step down on
    (exchangelib retries with the next older version on ErrorInvalidServerVersion)."""
    if not is_known(version):
        raise SOAPFault("ErrorInvalidServerVersion", f"The specified server version {version!r} is invalid.")


def at_least(version: str, minimum: str) -> bool:
    """True when ``version`` is ``minimum`` or newer (V2_* aliases count as newer than 2016)."""
    return _RANK.get(version, _RANK[NEWEST]) >= _RANK[minimum]


def reported(requested: str | None) -> str:
    """The Version attribute of ServerVersionInfo: echo a known requested version (exchangelib and
    Thunderbird keep what they asked for), else (unknown, or the request could not be read) the
    newest this server speaks."""
    return requested if requested is not None and is_known(requested) else NEWEST
