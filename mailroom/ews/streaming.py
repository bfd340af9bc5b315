"""The open answer to GetStreamingEvents: one HTTP response that carries a series of complete SOAP
envelopes. Each says ConnectionStatus OK and carries the streaming subscriptions' new events, or
nothing (a keep-alive); the last one says ConnectionStatus Closed, when the ConnectionTimeout ends
or no subscription of the connection is left (all unsubscribed).

The stream sleeps until a commit in this process (or an unsubscribe) wakes it (mailroom/notify/wakeup),
then reads the journal in a worker thread, so events go out as soon as they are committed and an
idle stream costs nothing but its keep-alives. The HTTP side (mailroom/server/app.py) writes what
``envelopes`` yields."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

from lxml import etree

from mailroom.access.identity import Identity
from mailroom.notify import wakeup
from mailroom.notify.subscriptions import Subscription
from mailroom.store import Store

from . import notifications
from .errors import EWSError
from .xml import m, sub, t, to_bytes

MINUTE = 60.0  # seconds in one ConnectionTimeout minute (tests shorten it)
KEEPALIVE = 30.0  # seconds of silence after which a keep-alive envelope goes out, as on Exchange

Next = Callable[[], tuple[bytes | None, bool]]


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

    async def envelopes(self, run: Callable[[Next], Awaitable[tuple[bytes | None, bool]]]) -> AsyncIterator[bytes]:
        """The envelopes as they fall due; ``run`` runs a store call in a worker thread. The first one
        goes out at once (the client learns the connection is up), with any events since Subscribe."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.minutes * MINUTE
        with wakeup.listening() as woken:
            status: str | None = "OK"
            while self.subscriptions and loop.time() < deadline:
                woken.clear()  # before reading: a commit during the read wakes the next wait
                payload, more = await run(partial(self._next, status))
                if payload is not None:
                    yield payload
                status = None
                if more:
                    continue
                try:
                    await asyncio.wait_for(woken.wait(), max(0.0, min(KEEPALIVE, deadline - loop.time())))
                except TimeoutError:
                    status = "OK"  # a keep-alive is due (or the deadline, ending the loop)
            if self.subscriptions:  # else the envelope that found none left said Closed
                payload, _ = await run(partial(self._next, "Closed"))
                if payload is not None:
                    yield payload

    def _next(self, status: str | None) -> tuple[bytes | None, bool]:
        """The envelope of the events since the last one with ConnectionStatus ``status`` (None: an
        envelope only if there are events), and whether more events wait. Unsubscribed or expired
        subscriptions are dropped; without any left, the status is Closed."""
        mailbox = self.identity.mailbox
        self.subscriptions = [s for s in self.subscriptions if self._live(s)]
        if not self.subscriptions:
            status = "Closed"
        root = copy.deepcopy(self.template)
        msg = root.find(f".//{m('GetStreamingEventsResponseMessage')}")
        notes = sub(msg, m("Notifications"))
        more = False
        for subscription in self.subscriptions:
            events, reached, more_of = notifications.collect(self.store, mailbox, subscription, subscription.delivered)
            if events:
                notifications.notification(notes, t("Notification"), mailbox, subscription, subscription.delivered,
                                           events, more_of)
            subscription.delivered = reached
            more = more or more_of
        if not len(notes):
            msg.remove(notes)
            if status is None:
                return None, more
        sub(msg, m("ConnectionStatus"), status or "OK")
        return to_bytes(root), more

    def _live(self, subscription: Subscription) -> bool:
        """Whether it is still subscribed (looking it up keeps it from expiring while the stream is open)."""
        try:
            notifications.subscription_of(self.store, self.identity, subscription.id, streaming=True)
        except EWSError:
            return False
        return True
