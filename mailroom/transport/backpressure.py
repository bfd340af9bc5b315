"""Back pressure, as Exchange's transport does it: meter a few resources every couple of seconds,
keep a Normal/Medium/High level per resource with hysteresis, and refuse new mail when the worst
of them is up. Medium refuses anonymous (inbound) mail and the pickup directory; High refuses all
submission, authenticated too. Mail already accepted keeps flowing out: nothing here touches the
queue's delivery.

Level changes are logged as Exchange's events 15004 (increased) and 15005 (decreased), with the
readings, and exposed as metrics.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from .metrics import TransportMetrics

log = logging.getLogger(__name__)

REFUSAL = "452 4.3.1 Insufficient system resources"


class Level(IntEnum):
    NORMAL = 0
    MEDIUM = 1
    HIGH = 2

    @property
    def title(self) -> str:
        return self.name.capitalize()


@dataclass(frozen=True)
class Thresholds:
    """Exchange's four thresholds for one resource: going up uses the first two, coming down the
    last two (lower), so a reading hovering at a threshold does not flap the level."""

    low_to_medium: float
    medium_to_high: float
    high_to_medium: float
    medium_to_low: float

    def __post_init__(self) -> None:
        if not (self.medium_to_low <= self.low_to_medium <= self.medium_to_high
                and self.medium_to_low <= self.high_to_medium <= self.medium_to_high):
            raise ValueError("thresholds must satisfy MediumToLow <= LowToMedium <= MediumToHigh and "
                             "MediumToLow <= HighToMedium <= MediumToHigh")

    def next_level(self, level: Level, reading: float) -> Level:
        """The state machine: where ``level`` goes with this ``reading``."""
        if reading >= self.medium_to_high:
            return Level.HIGH
        if level == Level.HIGH and reading >= self.high_to_medium:
            return Level.HIGH
        if level == Level.NORMAL:
            return Level.MEDIUM if reading >= self.low_to_medium else Level.NORMAL
        return Level.MEDIUM if reading >= self.medium_to_low else Level.NORMAL


@dataclass
class Resource:
    """One meter: ``name`` is Exchange's (e.g. ``DatabaseUsedSpace[/srv/mailroom]``)."""

    name: str
    read: Callable[[], float]
    thresholds: Thresholds
    level: Level = Level.NORMAL
    reading: float = 0.0


class BackPressure:
    def __init__(self, resources: list[Resource], metrics: TransportMetrics | None = None,
                 interval: float = 2.0) -> None:
        self.resources = resources
        self.metrics = metrics
        self.interval = interval
        self._publish()

    @property
    def level(self) -> Level:
        """The overall level: the worst resource's."""
        return max((r.level for r in self.resources), default=Level.NORMAL)

    def refusal(self, authenticated: bool) -> str | None:
        """The reply for a MAIL FROM now, or None to go on: Medium refuses unauthenticated senders,
        High everyone."""
        level = self.level
        if level == Level.HIGH or (level == Level.MEDIUM and not authenticated):
            return REFUSAL
        return None

    def accepts_pickup(self) -> bool:
        return self.level == Level.NORMAL

    def meter(self) -> Level:
        """Read every resource once and move the levels; returns the overall level."""
        before = self.level
        for resource in self.resources:
            try:
                resource.reading = float(resource.read())
            except (OSError, ValueError):
                log.exception("back-pressure meter %s could not be read", resource.name)
                continue
            resource.level = resource.thresholds.next_level(resource.level, resource.reading)
        after = self.level
        if after != before:
            self._log_change(before, after)
        self._publish()
        return after

    def _log_change(self, before: Level, after: Level) -> None:
        readings = "; ".join(f"{r.name} = {r.reading:g} [{r.level.title}] [Normal={r.thresholds.medium_to_low:g} "
                             f"Medium={r.thresholds.low_to_medium:g} High={r.thresholds.medium_to_high:g}]"
                             for r in self.resources)
        if after > before:
            log.error("Event 15004: the resource pressure increased from %s to %s. %s",
                      before.title, after.title, readings)
        else:
            log.info("Event 15005: the resource pressure decreased from %s to %s. %s",
                     before.title, after.title, readings)
        if self.metrics is not None:
            self.metrics.backpressure_changes.labels("increased" if after > before else "decreased").inc()

    def _publish(self) -> None:
        if self.metrics is None:
            return
        for resource in self.resources:
            self.metrics.backpressure_level.labels(resource.name).set(resource.level)
            self.metrics.backpressure_reading.labels(resource.name).set(resource.reading)
        self.metrics.backpressure_level.labels("overall").set(self.level)

    async def run(self) -> None:
        """Meter every ``interval`` seconds on the event loop, until cancelled."""
        while True:
            self.meter()
            await asyncio.sleep(self.interval)


def disk_used_percent(path: Path) -> float:
    """Percent of the filesystem holding ``path`` that is not available to us."""
    stat = os.statvfs(path)
    return 100.0 * (stat.f_blocks - stat.f_bavail) / stat.f_blocks if stat.f_blocks else 0.0


def _physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def process_memory_percent() -> float:
    """This process's resident memory as a percent of the machine's RAM (Exchange meters the
    transport process's private bytes the same way)."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return 100.0 * resident_pages * os.sysconf("SC_PAGE_SIZE") / _physical_memory()


def system_memory_percent() -> float:
    """Percent of the machine's memory in use (all processes): 1 - MemAvailable / MemTotal."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0])
    return 100.0 * (1 - info["MemAvailable"] / info["MemTotal"])


def standard_resources(data_dir: Path, thresholds: dict[str, Thresholds],
                       submission_queue_length: Callable[[], int],
                       pending_commits: Callable[[], int]) -> list[Resource]:
    """Exchange's meters: ``thresholds`` is keyed by the option names below (see config)."""
    where = str(data_dir.resolve())
    return [
        Resource(f"DatabaseUsedSpace[{where}]", lambda: disk_used_percent(data_dir),
                 thresholds["database_used_space"]),
        Resource("PrivateBytes", process_memory_percent, thresholds["private_bytes"]),
        Resource("SystemMemory", system_memory_percent, thresholds["system_memory"]),
        Resource("QueueLength[SubmissionQueue]", submission_queue_length, thresholds["submission_queue_length"]),
        Resource("UsedVersionBuckets", pending_commits, thresholds["version_buckets"]),
    ]
