"""Pull, push and streaming subscriptions, kept in memory per server process.

A subscription remembers who made it, which folders and event types it wants, the journal seq it
has delivered up to (at first the one it started at), and when it expires (its timeout after the
last use). Events are not stored: they are read from the change journal when due, so a
subscription is only this small record. Because it lives in one process, a subscription is used
through the process that made it; events reach it from every process sharing the database (the
journal is shared, and commits elsewhere wake it through mailroom/notify/listener.py).
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from mailroom.access.identity import Identity
from mailroom.store import Store
from mailroom.store.engine import engine_key
from mailroom.store.model import JournalEntry

from . import wakeup
from .settings import Settings

# Journal action -> event type. "read" changes an item's read flag: a modification to a client.
_EVENTS = {"created": "CreatedEvent", "modified": "ModifiedEvent", "read": "ModifiedEvent",
           "deleted": "DeletedEvent", "moved": "MovedEvent", "copied": "CopiedEvent"}
_SWEEP_EVERY = 1.0  # seconds between sweeps of expired subscriptions (each look-up checks its own)


class SubscriptionNotFound(LookupError):
    """No such subscription here: never made, unsubscribed, or expired."""


class SubscriptionAccessDenied(PermissionError):
    """The subscription belongs to another identity."""


class SubscriptionLimit(RuntimeError):
    """The mailbox already has as many live subscriptions as its throttling policy allows."""


def event_types(entry: JournalEntry, inbox_id: int, calendar_id: int) -> list[str]:
    """The events one journal entry is. An item created in the Inbox (delivered there, or saved
    there by a client) is also a NewMailEvent; items moved or copied there are not new mail. Any
    change to an item in the Calendar (into, in or out of it) is also a FreeBusyChangedEvent."""
    names = [_EVENTS[entry.action]]
    if entry.object_kind != "item":
        return names
    if entry.action == "created" and entry.folder_id == inbox_id:
        names.append("NewMailEvent")
    if entry.folder_id == calendar_id or (entry.action == "moved" and entry.old_folder_id == calendar_id):
        names.append("FreeBusyChangedEvent")
    return names


@dataclass(frozen=True)
class PushTarget:
    """Where and how often a push subscription's notifications go."""

    url: str
    status_minutes: int  # StatusFrequency
    version: str  # the RequestServerVersion of the Subscribe request, which the notifications report


@dataclass
class Subscription:
    id: str
    caller_id: int
    mailbox_id: int
    folder_ids: frozenset[int] | None  # None: all folders
    event_types: frozenset[str]
    timeout_minutes: int
    delivered: int  # the journal seq its events have been delivered up to
    kind: str = "pull"  # "pull" (GetEvents), "streaming" (GetStreamingEvents) or "push"
    push: PushTarget | None = None
    expires: float = field(default=0.0)  # time.monotonic() after which it is gone
    # Held while a pull reads and advances ``delivered``: concurrent GetEvents calls on one
    # subscription take turns, so no event is handed out twice.
    reading: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def touch(self) -> None:
        self.expires = time.monotonic() + self.timeout_minutes * 60

    def concerns(self, entry: JournalEntry) -> bool:
        """Whether the change happened in (or, for a move, left) one of its folders, or to one of them."""
        if self.folder_ids is None:
            return True
        places = {entry.folder_id, entry.old_folder_id if entry.action == "moved" else None}
        return bool(places & self.folder_ids) or (entry.object_kind == "folder" and entry.object_id in self.folder_ids)


PushStarter = Callable[[Subscription, Identity], None]


class Subscriptions:
    """The subscriptions of one store in this process, and the settings they live by."""

    def __init__(self, database: str) -> None:
        self.database = database  # the engine key wake-ups are filed under
        self.settings = Settings()
        self.start_push: PushStarter | None = None  # set by the running server: delivers a push subscription
        self._lock = threading.Lock()
        self._by_id: dict[str, Subscription] = {}
        self._by_mailbox: dict[int, set[str]] = {}  # live subscription ids per target mailbox
        self._swept = 0.0

    def add(self, identity: Identity, folder_ids: frozenset[int] | None, types: frozenset[str],
            timeout_minutes: int, start: int, kind: str = "pull", push: PushTarget | None = None,
            limit: int | None = None) -> Subscription:
        """A new subscription of ``identity``'s; SubscriptionLimit when the mailbox already has
        ``limit`` live ones (EwsMaxSubscriptions is charged to the target mailbox, as from Exchange
        2010 SP2 RU4). A push subscription starts being delivered at once."""
        subscription = Subscription(secrets.token_urlsafe(24), identity.caller.id, identity.mailbox.id, folder_ids,
                                    types, timeout_minutes, start, kind, push)
        subscription.touch()
        with self._lock:
            self._sweep()
            if limit is not None and self._count(identity.mailbox.id) >= limit:
                raise SubscriptionLimit(f"{identity.mailbox.address} has {limit} subscriptions already")
            self._by_id[subscription.id] = subscription
            self._by_mailbox.setdefault(subscription.mailbox_id, set()).add(subscription.id)
        if push is not None:
            if self.start_push is None:
                self.drop(subscription.id)
                raise RuntimeError("push notifications need the running server")
            self.start_push(subscription, identity)
        return subscription

    def count(self, mailbox_id: int) -> int:
        """Live subscriptions to ``mailbox_id``."""
        with self._lock:
            return self._count(mailbox_id)

    def _count(self, mailbox_id: int) -> int:
        """Live subscriptions to ``mailbox_id``; expired ones are forgotten first, so the count is true."""
        now = time.monotonic()
        held = self._by_mailbox.get(mailbox_id, set())
        for gone in [s for s in held if self._by_id[s].expires < now]:
            self._forget(gone)
        return len(self._by_mailbox.get(mailbox_id, ()))

    def get(self, subscription_id: str, identity: Identity) -> Subscription:
        """The caller's live subscription; using it restarts its timeout."""
        with self._lock:
            self._sweep()
            subscription = self._by_id.get(subscription_id)
            if subscription is None or subscription.expires < time.monotonic():
                raise SubscriptionNotFound(subscription_id)
            if (subscription.caller_id, subscription.mailbox_id) != (identity.caller.id, identity.mailbox.id):
                raise SubscriptionAccessDenied(subscription_id)
            subscription.touch()
            return subscription

    def alive(self, subscription: Subscription) -> bool:
        """Whether it is still subscribed, without restarting its timeout."""
        with self._lock:
            return self._by_id.get(subscription.id) is subscription and subscription.expires >= time.monotonic()

    def remove(self, subscription_id: str, identity: Identity) -> None:
        found = self.get(subscription_id, identity)
        self.drop(found.id)
        wakeup.poke(self.database, [found.mailbox_id])  # a stream or push delivering it stops at once

    def drop(self, subscription_id: str) -> None:
        """Forget a subscription (unsubscribed, or its push delivery ended)."""
        with self._lock:
            self._forget(subscription_id)

    def _forget(self, subscription_id: str) -> None:
        subscription = self._by_id.pop(subscription_id, None)
        if subscription is not None:
            held = self._by_mailbox.get(subscription.mailbox_id, set())
            held.discard(subscription_id)
            if not held:
                self._by_mailbox.pop(subscription.mailbox_id, None)

    def _sweep(self) -> None:
        """Forget expired subscriptions, at most every _SWEEP_EVERY seconds, so look-ups stay cheap
        however many subscriptions there are."""
        now = time.monotonic()
        if now - self._swept < _SWEEP_EVERY:
            return
        self._swept = now
        for gone in [s.id for s in self._by_id.values() if s.expires < now]:
            self._forget(gone)


_REGISTRIES: weakref.WeakKeyDictionary[Store, Subscriptions] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry(store: Store) -> Subscriptions:
    """The subscriptions of ``store`` in this process (one registry per Store object)."""
    with _REGISTRIES_LOCK:
        found = _REGISTRIES.get(store)
        if found is None:
            found = _REGISTRIES[store] = Subscriptions(engine_key(store.engine))
        return found
