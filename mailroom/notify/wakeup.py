"""Wakes the notification deliverers of this process (open streams, push subscriptions) that watch a
mailbox when something there may have changed: a commit that journalled a change to it (the store
calls ``poke`` after it), a commit in another process on the same PostgreSQL database
(mailroom/notify/listener.py) or an unsubscribe. A woken deliverer reads the journal itself, so a
wake-up carries nothing and a spurious one costs one cheap query.

Listeners are filed by database key and mailbox id, so a commit wakes only the deliverers of the
mailboxes it changed, however many subscriptions other mailboxes hold."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

from mailroom.store import engine

Key = tuple[str, int]  # (engine key, mailbox id)

_lock = threading.Lock()
_listeners: dict[Key, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


def poke(database: str, mailboxes: Iterable[int]) -> None:
    """Wake every listener of ``mailboxes`` in ``database``; safe from any thread."""
    with _lock:
        listeners = [listener for mailbox in mailboxes for listener in _listeners.get((database, mailbox), ())]
    for loop, event in listeners:
        with suppress(RuntimeError):  # its loop closed while the deliverer was ending
            loop.call_soon_threadsafe(event.set)


@contextmanager
def listening(database: str, mailbox: int) -> Iterator[asyncio.Event]:
    """An event of the running loop, set on each poke of the mailbox while the block runs (the listener clears it)."""
    key = (database, mailbox)
    listener = (asyncio.get_running_loop(), asyncio.Event())
    with _lock:
        _listeners.setdefault(key, set()).add(listener)
    try:
        yield listener[1]
    finally:
        with _lock:
            found = _listeners.get(key)
            if found is not None:
                found.discard(listener)
                if not found:
                    del _listeners[key]


engine.COMMIT_HOOKS.append(poke)


def poke_all(database: str) -> None:
    """Wake every listener of ``database`` (after a gap in which wake-ups may have been missed)."""
    with _lock:
        mailboxes = [mailbox for (key, mailbox) in _listeners if key == database]
    poke(database, mailboxes)
