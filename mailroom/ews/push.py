"""Push notifications: the server POSTs a SendNotification envelope to the subscription's URL when
events happen, or one with a StatusEvent after StatusFrequency minutes of silence, and the client
answers with a SendNotificationResult saying OK or Unsubscribe.

Each push subscription is one task on the server's event loop. It sleeps until a commit that
changed its mailbox wakes it (mailroom/notify/wakeup) or a status is due, reads the journal in a
worker thread as the subscription's own identity (captured when it subscribed: the impersonated
one for an impersonated subscription), and posts. Events count as delivered only once the client
answered OK; a failed post (no answer, an error status, a timeout, an oversized or unreadable
answer) is retried after ``push_retry_seconds``, doubling, until the next wait would exceed
StatusFrequency; then the subscription ends, as on Exchange. Posts go only where the URL guard
(mailroom/notify/guard.py) allows, to the addresses it checked, without following redirects."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from contextlib import suppress

import aiohttp

from mailroom.access.identity import Identity
from mailroom.notify import guard
from mailroom.notify.settings import Settings
from mailroom.notify.subscriptions import Subscription, registry
from mailroom.notify.wakeup import listening
from mailroom.store import Store

from . import notifications
from .endpoint import skeleton
from .xml import XMLRejected, m, parse, sub, t, text_of, to_bytes

log = logging.getLogger(__name__)

MINUTE = 60.0  # seconds in one StatusFrequency minute (tests shorten it)
_XML = "text/xml; charset=utf-8"


class Pusher:
    """The push deliveries of one store, run on one event loop; their store reads use ``pool``."""

    def __init__(self, store: Store, pool: Executor, settings: Settings) -> None:
        self.store = store
        self.pool = pool
        self.settings = settings
        self.guard = guard.from_settings(settings)
        self.loop = asyncio.get_running_loop()
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=guard.GuardedResolver(self.guard), use_dns_cache=False),
            timeout=aiohttp.ClientTimeout(total=settings.push_timeout_seconds))
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, subscription: Subscription, identity: Identity) -> None:
        """Begin delivering ``subscription`` as ``identity``; safe from any thread."""
        self.loop.call_soon_threadsafe(self._spawn, subscription, identity)

    def _spawn(self, subscription: Subscription, identity: Identity) -> None:
        task = self.loop.create_task(self._deliver(subscription, identity))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.session.close()

    async def _deliver(self, subscription: Subscription, identity: Identity) -> None:
        subscriptions = registry(self.store)
        assert subscription.push is not None
        every = subscription.push.status_minutes * MINUTE
        with listening(subscriptions.database, identity.mailbox.id) as woken:
            status_due = self.loop.time() + every
            while subscriptions.alive(subscription):
                woken.clear()  # before reading: a commit during the read wakes the next wait
                payload, reached = await self.loop.run_in_executor(
                    self.pool, self._envelope, subscription, identity, self.loop.time() >= status_due)
                if payload is None:
                    subscription.delivered = max(subscription.delivered, reached)
                    with suppress(TimeoutError):
                        await asyncio.wait_for(woken.wait(), max(0.0, status_due - self.loop.time()))
                    continue
                answer = await self._send(subscription, payload, every)
                if answer != "OK":
                    log.info("push subscription %s ended: %s", subscription.id, answer or "no answer")
                    subscriptions.drop(subscription.id)
                    return
                subscription.delivered = max(subscription.delivered, reached)
                subscription.touch()
                status_due = self.loop.time() + every

    def _envelope(self, subscription: Subscription, identity: Identity, status: bool) -> tuple[bytes | None, int]:
        """The SendNotification of the events since the last delivered (a StatusEvent when there are
        none and ``status`` is due; None when neither), and the seq it reaches."""
        mailbox = identity.mailbox
        view = notifications.JournalView(self.store, mailbox)
        after = subscription.delivered
        events, reached, more = notifications.collect(view, subscription, after)
        if not events and not status:
            return None, reached
        assert subscription.push is not None
        response = sub(skeleton(subscription.push.version), m("SendNotification"))
        msg = sub(sub(response, m("ResponseMessages")), m("SendNotificationResponseMessage"), ResponseClass="Success")
        sub(msg, m("ResponseCode"), "NoError")
        note = notifications.notification(msg, m("Notification"), mailbox, subscription, after, events, more)
        if not events:
            sub(sub(note, t("StatusEvent")), t("Watermark"), notifications.watermark(mailbox, reached))
        return to_bytes(response.getroottree().getroot()), reached

    async def _send(self, subscription: Subscription, payload: bytes, every: float) -> str | None:
        """Post until the client answers (its SubscriptionStatus), retrying with back-off; None
        when it never did, or when the subscription ended meanwhile."""
        wait = self.settings.push_retry_seconds
        while True:
            answer = await self._post(subscription, payload)
            if answer is not None:
                return answer
            if wait > every:
                return None
            await asyncio.sleep(wait)
            if not registry(self.store).alive(subscription):
                return None
            wait *= 2

    async def _post(self, subscription: Subscription, payload: bytes) -> str | None:
        """One post; the SubscriptionStatus the client answered, or None for a failed post."""
        assert subscription.push is not None
        url = subscription.push.url
        try:
            self.guard.check_url(url)
            async with self.session.post(url, data=payload, headers={"Content-Type": _XML},
                                         allow_redirects=False) as response:
                body = await response.content.read(self.settings.push_max_answer_bytes + 1)
                if response.status != 200 or len(body) > self.settings.push_max_answer_bytes:
                    log.info("push to %s failed: HTTP %s, %d bytes", url, response.status, len(body))
                    return None
        except (aiohttp.ClientError, OSError, TimeoutError, guard.PushUrlRefused) as exc:
            log.info("push to %s failed: %s", url, exc)
            return None
        return _status(body)


def _status(body: bytes) -> str | None:
    """The SubscriptionStatus of a SendNotificationResult answer (OK or Unsubscribe), None if it has none."""
    try:
        root = parse(body)
    except XMLRejected:
        return None
    result = root if root.tag == m("SendNotificationResult") else root.find(f".//{m('SendNotificationResult')}")
    status = text_of(result, m("SubscriptionStatus")) if result is not None else None
    status = (status or "").strip()
    return status if status in ("OK", "Unsubscribe") else None

