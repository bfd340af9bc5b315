"""Pull and streaming subscriptions, kept in memory per server process.

A subscription remembers who made it, which folders and event types it wants, the journal seq it
has delivered up to (at first the one it started at), and when it expires (its timeout after the last use). Events
are not stored: they are read from the change journal when asked for, so a subscription is only
this small record. Because it lives in one process, several processes sharing one PostgreSQL
database would each know only their own subscriptions (keeping them in the store is planned).
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field

from mailroom.access.identity import Identity
from mailroom.store import Store
from mailroom.store.model import JournalEntry

from . import wakeup

# Journal action -> event type. "read" changes an item's read flag: a modification to a client.
_EVENTS = {"created": "CreatedEvent", "modified": "ModifiedEvent", "read": "ModifiedEvent",
           "deleted": "DeletedEvent", "moved": "MovedEvent", "copied": "CopiedEvent"}


class SubscriptionNotFound(LookupError):
    """No such subscription here: never made, unsubscribed, or expired."""


class SubscriptionAccessDenied(PermissionError):
    """The subscription belongs to another identity."""


class SubscriptionLimit(RuntimeError):
    """The mailbox already has as many live subscriptions as its throttling policy allows."""


def event_types(entry: JournalEntry, inbox_id: int) -> list[str]:
    """The events one journal entry is. An item created in the Inbox (delivered there, or saved
    there by a client) is also a NewMailEvent; items moved or copied there are not new mail."""
    names = [_EVENTS[entry.action]]
    if entry.action == "created" and entry.object_kind == "item" and entry.folder_id == inbox_id:
        names.append("NewMailEvent")
    return names


@dataclass
class Subscription:
    id: str
    caller_id: int
    mailbox_id: int
    folder_ids: frozenset[int] | None  # None: all folders
    event_types: frozenset[str]
    timeout_minutes: int
    delivered: int  # the journal seq its events have been delivered up to
    streaming: bool = False  # delivered over GetStreamingEvents rather than fetched with GetEvents
    expires: float = field(default=0.0)  # time.monotonic() after which it is gone

    def touch(self) -> None:
        self.expires = time.monotonic() + self.timeout_minutes * 60

    def concerns(self, entry: JournalEntry) -> bool:
        """Whether the change happened in (or, for a move, left) one of its folders, or to one of them."""
        if self.folder_ids is None:
            return True
        places = {entry.folder_id, entry.old_folder_id if entry.action == "moved" else None}
        return bool(places & self.folder_ids) or (entry.object_kind == "folder" and entry.object_id in self.folder_ids)


class Subscriptions:
    """The subscriptions of one store in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Subscription] = {}

    def add(self, identity: Identity, folder_ids: frozenset[int] | None, types: frozenset[str],
            timeout_minutes: int, start: int, streaming: bool = False, limit: int | None = None) -> Subscription:
        """A new subscription; SubscriptionLimit when the mailbox already has ``limit`` live ones
        (EwsMaxSubscriptions is charged to the target mailbox, as from Exchange 2010 SP2 RU4)."""
        subscription = Subscription(secrets.token_urlsafe(24), identity.caller.id, identity.mailbox.id, folder_ids,
                                    types, timeout_minutes, start, streaming)
        subscription.touch()
        with self._lock:
            self._sweep()
            if limit is not None and self._count(identity.mailbox.id) >= limit:
                raise SubscriptionLimit(f"{identity.mailbox.address} has {limit} subscriptions already")
            self._by_id[subscription.id] = subscription
        return subscription

    def count(self, mailbox_id: int) -> int:
        """Live subscriptions to ``mailbox_id``."""
        with self._lock:
            self._sweep()
            return self._count(mailbox_id)

    def _count(self, mailbox_id: int) -> int:
        return sum(1 for s in self._by_id.values() if s.mailbox_id == mailbox_id)

    def get(self, subscription_id: str, identity: Identity) -> Subscription:
        """The caller's live subscription; using it restarts its timeout."""
        with self._lock:
            self._sweep()
            subscription = self._by_id.get(subscription_id)
            if subscription is None:
                raise SubscriptionNotFound(subscription_id)
            if (subscription.caller_id, subscription.mailbox_id) != (identity.caller.id, identity.mailbox.id):
                raise SubscriptionAccessDenied(subscription_id)
            subscription.touch()
            return subscription

    def remove(self, subscription_id: str, identity: Identity) -> None:
        self.get(subscription_id, identity)
        with self._lock:
            self._by_id.pop(subscription_id, None)
        wakeup.poke()  # a stream delivering it stops at once

    def _sweep(self) -> None:
        now = time.monotonic()
        for gone in [s.id for s in self._by_id.values() if s.expires < now]:
            del self._by_id[gone]


_REGISTRIES: weakref.WeakKeyDictionary[Store, Subscriptions] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry(store: Store) -> Subscriptions:
    """The subscriptions of ``store`` in this process (one registry per Store object)."""
    with _REGISTRIES_LOCK:
        found = _REGISTRIES.get(store)
        if found is None:
            found = _REGISTRIES[store] = Subscriptions()
        return found
