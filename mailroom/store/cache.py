"""Short-lived caches of store answers for the hot mail-flow paths (an SMTP recipient check, a
local delivery), shared by every handle on one database in this process.

A change made through this process's store code drops the cached answers at once (``forget``).
A change made by another process (the admin CLI, another server on the same PostgreSQL) is seen
once an answer is older than its cache's ``seconds``. Only found answers are kept: something
that did not exist is looked up again every time, so a mailbox or domain created elsewhere is
found at once.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import Engine

from .engine import engine_key

K = TypeVar("K")
V = TypeVar("V")


class SharedCache(Generic[K, V]):
    """Values by key, each trusted for ``seconds``. ``forget`` wins over a load that was running
    when it was called (that load's answer is not kept), so a change is never hidden by it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._values: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def peek(self, key: K) -> V | None:
        """``key``'s answer if it is cached and still trusted; never loads (safe on an event loop)."""
        found = self._values.get(key)
        return found[1] if found is not None and found[0] > time.monotonic() else None

    def get(self, key: K, load: Callable[[], V | None]) -> V | None:
        found = self.peek(key)
        if found is not None:
            return found
        generation = self._generation
        value = load()
        if value is not None:
            with self._lock:
                if generation == self._generation:
                    self._values[key] = (time.monotonic() + self.seconds, value)
        return value

    def forget(self, key: K | None = None) -> None:
        """Drop ``key``'s answer, or every answer."""
        with self._lock:
            self._generation += 1
            if key is None:
                self._values.clear()
            else:
                self._values.pop(key, None)


_CACHES: dict[tuple[str, str], SharedCache] = {}
_CACHES_LOCK = threading.Lock()
_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def shared(name: str, engine: Engine, seconds: float) -> SharedCache:
    """The cache ``name`` of the database ``engine`` opens (one per database and name in this process)."""
    with _CACHES_LOCK:
        database = _KEYS.get(engine)
        if database is None:
            database = _KEYS[engine] = engine_key(engine)
        key = (name, database)
        found = _CACHES.get(key)
        if found is None:
            found = _CACHES[key] = SharedCache(seconds)
        return found
