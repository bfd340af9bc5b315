"""The open answer to GetStreamingEvents: one HTTP response that carries a series of complete SOAP
envelopes. Each says ConnectionStatus OK and carries the streaming subscriptions' new events, or
nothing (a keep-alive); the last one says ConnectionStatus Closed, when the ConnectionTimeout ends
or no subscription of the connection is left (all unsubscribed).

The stream sleeps until a commit that changed its mailbox (in this process or, on PostgreSQL, in
another) or an unsubscribe wakes it (mailroom/notify/wakeup), then reads the journal in a worker
thread, once for all its subscriptions, so events go out as soon as they are committed and an idle
stream costs nothing but its keep-alives. A subscription's place moves on only once the envelope
carrying its events has been written, so a client that reconnects after a broken connection gets
those events again rather than never. The HTTP side (mailroom/server/app.py) writes what
``envelopes`` yields."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from lxml import etree

from mailroom.access.identity import Identity
from mailroom.notify import subscriptions as registry
from mailroom.notify import wakeup
from mailroom.notify.subscriptions import Subscription
from mailroom.store import Store

from . import notifications
from .errors import EWSError
from .xml import m, sub, t, to_bytes

MINUTE = 60.0  # seconds in one ConnectionTimeout minute (tests shorten it)
KEEPALIVE = 30.0  # seconds of silence after which a keep-alive envelope goes out, as on Exchange

Places = dict[str, int]  # subscription id -> the seq the envelope's events reach
Pass = tuple[bytes | None, bool, Places]
Next = Callable[[], Pass]


class Stream:
    """The subscriptions one GetStreamingEvents connection delivers, for ``minutes``. ``template`` is
    a whole response envelope holding one Success GetStreamingEventsResponseMessage; each envelope
    sent is a copy of it with the events and the ConnectionStatus added."""

    def __init__(self, store: Store, identity: Identity, subscriptions: list[Subscription], minutes: int,
                 template: etree._Element) -> None:
        self.store = store
        self.identity = identity
        self.subscriptions = subscriptions
        self.minutes = minutes
        self.template = template

    async def envelopes(self, run: Callable[[Next], Awaitable[Pass]]) -> AsyncIterator[bytes]:
        """The envelopes as they fall due; ``run`` runs a store call in a worker thread. The first one
        goes out at once (the client learns the connection is up), with any events since Subscribe."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.minutes * MINUTE
        database = registry.registry(self.store).database
        with wakeup.listening(database, self.identity.mailbox.id) as woken:
            status: str | None = "OK"
            while self.subscriptions and loop.time() < deadline:
                woken.clear()  # before reading: a commit during the read wakes the next wait
                payload, more, places = await run(partial(self._next, status))
                if payload is not None:
                    yield payload
                self._delivered(places)
                status = None
                if more:
                    continue
                try:
                    await asyncio.wait_for(woken.wait(), max(0.0, min(KEEPALIVE, deadline - loop.time())))
                except TimeoutError:
                    status = "OK"  # a keep-alive is due (or the deadline, ending the loop)
            if self.subscriptions:  # else the envelope that found none left said Closed
                payload, _, places = await run(partial(self._next, "Closed"))
                if payload is not None:
                    yield payload
                self._delivered(places)

    def _delivered(self, places: Places) -> None:
        for subscription in self.subscriptions:
            subscription.delivered = max(subscription.delivered, places.get(subscription.id, 0))

    def _next(self, status: str | None) -> Pass:
        """The envelope of the events since the last one with ConnectionStatus ``status`` (None: an
        envelope only if there are events), whether more events wait, and the places its events
        reach. Unsubscribed or expired subscriptions are dropped; without any left, the status is Closed."""
        mailbox = self.identity.mailbox
        self.subscriptions = [s for s in self.subscriptions if self._live(s)]
        if not self.subscriptions:
            status = "Closed"
        root = copy.deepcopy(self.template)
        msg = root.find(f".//{m('GetStreamingEventsResponseMessage')}")
        notes = sub(msg, m("Notifications"))
        more = False
        places: Places = {}
        view = notifications.JournalView(self.store, mailbox)
        for subscription in self.subscriptions:
            events, reached, more_of = notifications.collect(view, subscription, subscription.delivered)
            if events:
                notifications.notification(notes, t("Notification"), mailbox, subscription, subscription.delivered,
                                           events, more_of)
            places[subscription.id] = reached
            more = more or more_of
        if not len(notes):
            msg.remove(notes)
            if status is None:
                return None, more, places
        sub(msg, m("ConnectionStatus"), status or "OK")
        return to_bytes(root), more, places

    def _live(self, subscription: Subscription) -> bool:
        """Whether it is still subscribed (looking it up keeps it from expiring while the stream is open)."""
        try:
            notifications.subscription_of(self.store, self.identity, subscription.id, kind="streaming")
        except EWSError:
            return False
        return True
