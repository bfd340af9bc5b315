"""Sleep throttling (Exchange 2010's CPUStartPercent): while this process's CPU use, averaged
over about ten seconds across all cores, is above a caller's CPUStartPercent, each per-item check
of its batch sleeps, linearly from 0 at CPUStartPercent to MAX_SLEEP at 100%."""

from __future__ import annotations

import os
import threading
import time
from collections import deque

WINDOW = 10.0  # seconds averaged over
STEP = 1.0  # seconds between samples
MAX_SLEEP = 0.5  # seconds at 100% CPU


class CPUMeter:
    """Process CPU time against wall time over the last WINDOW seconds, sampled at most every STEP
    seconds (reading it is a clock read and a comparison otherwise)."""

    def __init__(self, cores: int | None = None) -> None:
        self.cores = cores or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, float]] = deque([(time.monotonic(), time.process_time())])
        self._percent = 0.0

    def percent(self, now: float | None = None, cpu_time: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if now - self._samples[-1][0] < STEP:
            return self._percent
        with self._lock:
            self._samples.append((now, time.process_time() if cpu_time is None else cpu_time))
            while len(self._samples) > 2 and self._samples[1][0] <= now - WINDOW:
                self._samples.popleft()
            (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
            self._percent = 100.0 * (c1 - c0) / ((t1 - t0) * self.cores) if t1 > t0 else 0.0
        return self._percent


def sleep_for(percent: float, start: int | None) -> float:
    """Seconds one per-item check sleeps at ``percent`` CPU for a policy starting at ``start``."""
    if start is None or percent <= start or start >= 100:
        return 0.0
    return MAX_SLEEP * min(1.0, (percent - start) / (100 - start))


METER = CPUMeter()


def throttle(start: int | None) -> None:
    if start is None:
        return
    pause = sleep_for(METER.percent(), start)
    if pause:
        time.sleep(pause)
