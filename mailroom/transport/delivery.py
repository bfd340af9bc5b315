"""Local delivery in group commits: the messages that became due while the store was busy with
the previous batch, or within ``WINDOW`` (10 ms) before a batch is written, are delivered
together, in one store transaction (one commit, one fsync), by a delivery thread. This
turns one fsync and one wait for the store's write lock per message into one per batch. The
window matters when mail arrives one message at a time (one SMTP client): without it each
message was a transaction of its own, about twice the CPU of a batched one on the 2-core
machine (the fsync alone about 0.6 ms); with it a message reaches its mailbox up to 10 ms later.
The SMTP 250 does not wait for delivery (it follows the queue's commit), so it does not see the
window. The threads are the transport's own, so EWS requests and SMTP recipient checks never queue
in the worker pool behind deliveries.

Delivery yields to the protocols while it keeps up: a batch that took everything waiting, did
not fill up and leaves no more than a few messages in the transport behind it (``waiting``) is
written by a thread at a lower scheduling priority (nice 10), so a client waiting for an SMTP
reply or an EWS answer gets the CPU first; any other batch is written by a thread at the
process's own priority, so delivery does not fall behind for want of CPU. Two threads rather
than one that changes its priority: going back up needs a privilege a server need not have.
Only one batch is written at a time either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mailroom.store import Store

from .local import DeliveryResult, LocalMessage, deliver_batch

log = logging.getLogger(__name__)

MAX_BATCH = 64  # messages per transaction
WINDOW = 0.010  # seconds a batch waits for company before it is written (unless already full)
BACKGROUND_NICE = 10  # the priority of batches written while delivery keeps up
KEEPING_UP = 4  # at most this many messages in the transport besides a batch: delivery keeps up


def _lower_priority() -> None:
    """Lower this thread's priority (Linux schedules threads alone; elsewhere nothing changes)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) +
                       BACKGROUND_NICE)


class LocalDeliveries:
    """``deliver`` from the event loop; batches are formed here and written in the delivery threads."""

    def __init__(self, store: Store, max_batch: int = MAX_BATCH, waiting: Callable[[], int] = lambda: 0) -> None:
        self.store = store
        self.max_batch = max_batch
        self.waiting = waiting  # messages the transport is working on, these deliveries' included
        self._keeping_up = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-background",
                                              initializer=_lower_priority)
        self._behind = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery")
        self._pending: list[tuple[LocalMessage, asyncio.Future[DeliveryResult]]] = []
        self._writer: asyncio.Task | None = None

    async def deliver(self, message: LocalMessage) -> DeliveryResult:
        """``local.deliver_batch`` of ``message``, returning once the store transaction holding it committed."""
        future: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self._pending.append((message, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="local delivery")
        return await future

    async def close(self) -> None:
        """Wait for the batch being written, then stop the threads."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        for executor in (self._keeping_up, self._behind):
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            if len(self._pending) < self.max_batch:
                await asyncio.sleep(WINDOW)
            taken, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
            batch = [(message, future) for message, future in taken if not future.done()]  # not cancelled
            if not batch:
                continue
            keeping_up = (not self._pending and len(taken) < self.max_batch
                          and self.waiting() <= len(taken) + KEEPING_UP)
            executor = self._keeping_up if keeping_up else self._behind
            try:
                results = await loop.run_in_executor(executor, self._deliver, [m for m, _ in batch])
            except Exception as exc:  # the thread is gone (shutting down): answer rather than leave them waiting
                results = [exc] * len(batch)
            for (_message, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _deliver(self, messages: list[LocalMessage]) -> list[DeliveryResult | Exception]:
        """The batch in one transaction; if that fails, each message alone, so one that cannot
        be stored fails only itself."""
        try:
            return list(deliver_batch(self.store, messages))
        except Exception as exc:
            if len(messages) == 1:
                return [exc]
            log.warning("a batch of %d local deliveries failed (%s); delivering them one by one",
                        len(messages), exc)
        return [self._alone(message) for message in messages]

    def _alone(self, message: LocalMessage) -> DeliveryResult | Exception:
        try:
            return deliver_batch(self.store, [message])[0]
        except Exception as exc:
            return exc
