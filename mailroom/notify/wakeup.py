"""Wakes open notification streams of this process when something may have changed: a commit that
journalled a change (the store calls ``poke`` after it) or an unsubscribe. A woken stream reads the
journal itself, so a wake-up carries nothing and a spurious one costs one cheap query."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from mailroom.store import engine

_lock = threading.Lock()
_listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def poke() -> None:
    """Wake every listener; safe from any thread."""
    with _lock:
        listeners = list(_listeners)
    for loop, event in listeners:
        with suppress(RuntimeError):  # its loop closed while the stream was ending
            loop.call_soon_threadsafe(event.set)


@contextmanager
def listening() -> Iterator[asyncio.Event]:
    """An event of the running loop, set on each poke while the block runs (the listener clears it)."""
    listener = (asyncio.get_running_loop(), asyncio.Event())
    with _lock:
        _listeners.add(listener)
    try:
        yield listener[1]
    finally:
        with _lock:
            _listeners.discard(listener)


engine.COMMIT_HOOKS.append(poke)
