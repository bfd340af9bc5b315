"""The server's throttling state: the policy cache and one budget per caller, and the access log
line with the budget snapshots of every EWS call (DEBUG on the ``mailroom.access`` logger).

Policies are cached per process as on Exchange: an entry lives ``cache_seconds`` after it is
loaded, each use extends it by as much again, but never past ``cache_max_seconds`` after loading;
then it is read again. So a changed policy takes effect within ``cache_max_seconds`` at most."""

from __future__ import annotations

import logging
import threading
import time

from mailroom.notify import subscriptions
from mailroom.store import Store
from mailroom.store.model import Mailbox

from .budget import Budget, Ticket
from .policy import FALLBACK, Effective, resolve

log = logging.getLogger(__name__)
access_log = logging.getLogger("mailroom.access")


class Throttle:
    def __init__(self, store: Store, cache_seconds: float = 300, cache_max_seconds: float = 900,
                 hanging_connection_limit: int = 10) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.cache_max_seconds = max(cache_max_seconds, cache_seconds)
        self.hanging_connection_limit = hanging_connection_limit
        self._lock = threading.Lock()
        self._policies: dict[int, tuple[Effective, float, float]] = {}  # mailbox id -> (policy, loaded, expires)
        self._budgets: dict[int, Budget] = {}

    def cached(self, mailbox_id: int) -> Effective | None:
        """The caller's cached policy (extending its life), or None when it must be loaded."""
        entry = self._policies.get(mailbox_id)
        now = time.monotonic()
        if entry is None or now >= entry[2]:
            return None
        policy, loaded, _ = entry
        self._policies[mailbox_id] = (policy, loaded, min(now + self.cache_seconds, loaded + self.cache_max_seconds))
        return policy

    def load(self, mailbox_id: int) -> Effective:
        """Read the caller's policy chain from the store (a worker-thread call); the Global policy
        when the store cannot say."""
        try:
            policy = resolve(self.store.throttling.chain(mailbox_id))
        except Exception:
            log.exception("cannot read throttling policies; the Global policy applies")
            policy = FALLBACK
        now = time.monotonic()
        self._policies[mailbox_id] = (policy, now, now + self.cache_seconds)
        return policy

    def begin(self, caller: Mailbox, policy: Effective) -> Ticket:
        """Admit a request of ``caller`` (the authenticated account: an impersonating service account
        spends its own budget) under ``policy``; raises Throttled."""
        budget = self._budgets.get(caller.id)
        if budget is None:
            with self._lock:
                budget = self._budgets.setdefault(caller.id, Budget(caller.id, caller.address, policy))
        ticket = budget.begin(policy)
        ticket.hanging_limit = self.hanging_connection_limit
        if access_log.isEnabledFor(logging.DEBUG):
            ticket.init = budget.snapshot()
        return ticket

    def end(self, ticket: Ticket, status: int) -> None:
        budget = ticket.budget
        budget.end(ticket)
        if access_log.isEnabledFor(logging.DEBUG):
            took = (time.monotonic() - ticket.started) * 1000
            subs = f"Sub:{subscriptions.registry(self.store).count(budget.caller_id)}/" \
                   f"{budget.policy['EwsMaxSubscriptions']}"
            access_log.debug("%s SoapAction=%s status=%d Init>>%s;End(%.0fms,work %.0fms)>>%s,%s", budget.caller,
                            ticket.action or "-", status, ticket.init, took, ticket.worked * 1000, budget.snapshot(),
                            subs)
