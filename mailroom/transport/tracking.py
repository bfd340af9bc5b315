"""The message tracking log: one record per thing that happens to a message, in Exchange's format.

Files are CSV with Exchange's header lines and fields (``MSGTRK<yyyymmdd>-<n>.log``, UTC dates,
a new file each day or when one reaches the size limit); the oldest files are removed once they
pass the maximum age or the folder passes its maximum size (circular logging). Multi-valued
fields (recipients and their statuses) are ``;``-separated, in the same order.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from mailroom import __version__
from mailroom.server.config import Config

PREFIX = "MSGTRK"
EVENTS = frozenset({
    "RECEIVE", "SUBMIT", "RESOLVE", "EXPAND", "REDIRECT", "SEND", "DELIVER", "DUPLICATEDELIVER", "DEFER", "FAIL",
    "DSN", "POISONMESSAGE", "RESUBMIT", "BADMAIL", "AGENTINFO", "TRANSFER", "DROP", "SUPPRESSED", "DUPLICATEEXPAND",
})


@dataclass
class TrackingEvent:
    """One record. Field names are Exchange's with dashes as underscores (``date-time`` is ``date_time``)."""

    event_id: str
    source: str
    internal_message_id: str = ""
    message_id: str = ""
    network_message_id: str = ""
    recipient_address: list[str] = field(default_factory=list)
    recipient_status: list[str] = field(default_factory=list)
    total_bytes: int | None = None
    recipient_count: int | None = None
    related_recipient_address: str = ""
    reference: str = ""
    message_subject: str = ""
    sender_address: str = ""
    return_path: str = ""
    message_info: str = ""
    directionality: str = ""
    client_ip: str = ""
    client_hostname: str = ""
    server_ip: str = ""
    server_hostname: str = ""
    source_context: str = ""
    connector_id: str = ""
    custom_data: str = ""
    date_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.event_id not in EVENTS:
            raise ValueError(f"unknown tracking event {self.event_id!r}")


# Exchange's documented field order (Message tracking log fields); tenant and schema fields stay empty.
FIELDS = ("date-time", "client-ip", "client-hostname", "server-ip", "server-hostname", "source-context",
          "connector-id", "source", "event-id", "internal-message-id", "message-id", "network-message-id",
          "recipient-address", "recipient-status", "total-bytes", "recipient-count", "related-recipient-address",
          "reference", "message-subject", "sender-address", "return-path", "message-info", "directionality",
          "tenant-id", "original-client-ip", "original-server-ip", "custom-data", "transport-traffic-type",
          "log-id", "schema-version")
_ATTRS = {f.name for f in fields(TrackingEvent)}
_MULTI = ("recipient_address", "recipient_status")
_INTS = ("total_bytes", "recipient_count")
_COLUMNS = tuple(name.replace("-", "_") for name in FIELDS)
_AT = {attr: i for i, attr in enumerate(_COLUMNS)}


def _row(event: TrackingEvent, log_subject: bool) -> list[str]:
    found = vars(event)
    row = [str(found.get(attr, "")) for attr in _COLUMNS]  # every text field; the others set below
    row[_AT["date_time"]] = event.date_time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for attr in _MULTI:
        row[_AT[attr]] = ";".join(found[attr])
    for attr in _INTS:
        row[_AT[attr]] = "" if found[attr] is None else str(found[attr])
    if not log_subject:
        row[_AT["message_subject"]] = ""
    row[_AT["schema_version"]] = __version__
    return row


def _event(row: dict[str, str]) -> TrackingEvent:
    kwargs: dict[str, object] = {}
    for name, value in row.items():
        attr = name.replace("-", "_")
        if attr not in _ATTRS:
            continue
        if attr == "date_time":
            kwargs[attr] = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif attr in _MULTI:
            kwargs[attr] = value.split(";") if value else []
        elif attr in _INTS:
            kwargs[attr] = int(value) if value else None
        else:
            kwargs[attr] = value
    return TrackingEvent(**kwargs)  # type: ignore[arg-type]


@dataclass
class TrackingQuery:
    """Get-MessageTrackingLog's filters: ``end`` is exclusive, ``subject`` a partial match,
    ``recipients`` matches any of them, addresses compare without regard to case."""

    start: datetime | None = None
    end: datetime | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    event_id: str | None = None
    message_id: str | None = None
    internal_message_id: str | None = None
    subject: str | None = None
    source: str | None = None
    reference: str | None = None
    result_size: int | None = 1000  # Exchange's default; None is unlimited

    def matches(self, event: TrackingEvent) -> bool:
        wanted_rcpts = {r.lower() for r in self.recipients}
        return ((self.start is None or event.date_time >= self.start)
                and (self.end is None or event.date_time < self.end)
                and (self.sender is None or event.sender_address.lower() == self.sender.lower())
                and (not wanted_rcpts or bool(wanted_rcpts & {r.lower() for r in event.recipient_address}))
                and (self.event_id is None or event.event_id == self.event_id.upper())
                and (self.message_id is None or event.message_id == self.message_id)
                and (self.internal_message_id is None or event.internal_message_id == self.internal_message_id)
                and (self.subject is None or self.subject.lower() in event.message_subject.lower())
                and (self.source is None or event.source == self.source.upper())
                and (self.reference is None or event.reference == self.reference))


class MessageTrackingLog:
    """Appends records (from any thread) and searches them. Records are flushed to the file as
    they are written; the log is for tracing, not for durability, so it is not fsynced."""

    def __init__(self, directory: Path, *, max_age: timedelta = timedelta(days=30),
                 max_file_bytes: int = 10 * 1024 * 1024, max_directory_bytes: int = 1000 * 1024 * 1024,
                 log_subject: bool = True, enabled: bool = True) -> None:
        self.directory = directory
        self.max_age = max_age
        self.max_file_bytes = max_file_bytes
        self.max_directory_bytes = max_directory_bytes
        self.log_subject = log_subject
        self.enabled = enabled
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0  # bytes in the current file (counted: a text file's tell() is slow)
        self._date: date | None = None  # the day (UTC) of the current file

    @classmethod
    def configured(cls, config: Config) -> MessageTrackingLog:
        """The log in ``<data_dir>/logs/MessageTracking`` with the ``tracking.*`` settings (the
        server writes it; the CLI searches it and records its queue actions in it)."""
        return cls(config.data_dir / "logs" / "MessageTracking",
                   max_age=timedelta(days=config["tracking.max_age_days"]),
                   max_file_bytes=config["tracking.max_file_bytes"],
                   max_directory_bytes=config["tracking.max_directory_bytes"],
                   log_subject=config["tracking.log_subject"], enabled=config["tracking.enabled"])

    def record(self, event: TrackingEvent) -> None:
        if not self.enabled:
            return
        line = io.StringIO()
        csv.writer(line, lineterminator="\r\n").writerow(_row(event, self.log_subject))
        data = line.getvalue().encode()
        with self._lock:
            out = self._current(event.date_time.astimezone(UTC))
            out.write(data)
            out.flush()
            self._size += len(data)

    def _current(self, now: datetime) -> BinaryIO:
        if self._file is not None and now.date() == self._date and self._size < self.max_file_bytes:
            return self._file
        if self._file is not None:
            self._file.close()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prune(now)
        self._date = now.date()
        self._file = self._new_file(now.strftime("%Y%m%d"), now)
        return self._file

    def _new_file(self, day: str, now: datetime) -> BinaryIO:
        numbers = [int(p.stem.rsplit("-", 1)[1]) for p in self.directory.glob(f"{PREFIX}{day}-*.log")]
        path = self.directory / f"{PREFIX}{day}-{max(numbers, default=0) + 1}.log"
        out = path.open("ab")
        head = (f"#Software: mailroom\r\n#Version: {__version__}\r\n#Log-Type: Message Tracking Log\r\n"
                f"#Date: {now.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}\r\n"
                f"#Fields: {','.join(FIELDS)}\r\n").encode()
        out.write(head)
        self._size = out.tell()
        return out

    def _prune(self, now: datetime) -> None:
        """Circular logging: drop files older than the maximum age, then the oldest until the
        folder is within its maximum size."""
        files = self.files()
        if self.max_age:
            cutoff = (now - self.max_age).strftime("%Y%m%d")
            for path in [p for p in files if _day_of(p) < cutoff]:
                path.unlink(missing_ok=True)
                files.remove(path)
        total = sum(p.stat().st_size for p in files)
        while files and total > self.max_directory_bytes:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        """The log files, oldest first."""
        return sorted(self.directory.glob(f"{PREFIX}*-*.log"), key=lambda p: (_day_of(p), _number_of(p)))

    def search(self, query: TrackingQuery) -> list[TrackingEvent]:
        found = []
        for event in self._events(query):
            if query.matches(event):
                found.append(event)
                if query.result_size is not None and len(found) >= query.result_size:
                    break
        return found

    def _events(self, query: TrackingQuery) -> Iterator[TrackingEvent]:
        first = query.start.astimezone(UTC).strftime("%Y%m%d") if query.start else ""
        last = query.end.astimezone(UTC).strftime("%Y%m%d") if query.end else "99999999"
        for path in self.files():
            if first <= _day_of(path) <= last:
                yield from read_file(path)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def read_file(path: Path) -> Iterable[TrackingEvent]:
    """The records of one log file (its own #Fields line names the columns)."""
    with path.open(encoding="utf-8", newline="") as src:
        names: list[str] = list(FIELDS)
        lines = []
        for line in src:
            if line.startswith("#Fields: "):
                names = line[len("#Fields: "):].strip().split(",")
            elif not line.startswith("#") and line.strip():
                lines.append(line)
    for values in csv.reader(lines):
        yield _event(dict(zip(names, values, strict=False)))


def _day_of(path: Path) -> str:
    return path.stem[len(PREFIX):].split("-", 1)[0]


def _number_of(path: Path) -> int:
    return int(path.stem.rsplit("-", 1)[1])
