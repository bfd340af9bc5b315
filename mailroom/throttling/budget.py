"""A caller's budget: one per caller per process, shared by all its concurrent requests.

It holds what the caller uses now (connections, streaming connections, find-count items) and
what it has used lately: the 2013+ token bucket (a balance of milliseconds that request time
draws down, recharged at EwsRechargeRate per hour up to EwsMaxBurst; below zero each new request
is micro-delayed, below -EwsCutoffBalance the caller is refused until the balance is back at zero)
and the 2010 window (request time in the last minute against EwsPercentTimeInCAS).

Request time is wall time measured in the worker around the request's work (time.monotonic), so
a request waiting for a worker or a client reading slowly is not charged.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import cpu
from .policy import Effective

MINUTE_MS = 60_000.0
HOUR_MS = 3_600_000.0
MAX_DELAY = 0.5  # seconds: the longest micro-delay (at the cutoff balance)


class Throttled(Exception):
    """The request is refused: ``code`` is the EWS ResponseCode, ``backoff_ms`` the hint for
    ErrorServerBusy's BackOffMilliseconds."""

    def __init__(self, code: str, message: str, backoff_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.backoff_ms = backoff_ms


def _text(value: float | int | None) -> str:
    return "unl" if value is None else str(int(value))


class Budget:
    def __init__(self, caller_id: int, caller: str, policy: Effective) -> None:
        self.caller_id = caller_id
        self.caller = caller
        self.policy = policy
        self._lock = threading.Lock()
        self.connections = 0
        self.hanging = 0
        self.find_count = 0
        self.balance: float | None = None  # ms; None while the policy has no bucket (unlimited)
        self._updated = time.monotonic()
        self._blocked = False  # reached the cutoff; stays so until recharged to zero
        self._window: deque[tuple[float, float]] = deque()  # (when, ms) of the last minute's requests
        self._window_ms = 0.0

    # -- admission ------------------------------------------------------------------------------
    def begin(self, policy: Effective, action: str = "") -> Ticket:
        """Admit one request (or raise Throttled); its connection counts until ``end``."""
        now = time.monotonic()
        with self._lock:
            self.policy = policy
            self._recharge(now)
            limit = policy["EwsMaxConcurrency"]
            if limit is not None and self.connections >= limit:
                raise Throttled("ErrorExceededConnectionCount",
                                f"You have exceeded the maximum number of concurrent connections ({limit}) "
                                "for your account. Try again later.")
            backoff = max(self._cutoff_backoff(), self._window_backoff(now))
            if backoff:
                raise Throttled("ErrorServerBusy", "The server cannot service this request right now. "
                                                   "Try again later.", backoff)
            self.connections += 1
            return Ticket(self, self._delay(), action=action)

    def _recharge(self, now: float) -> None:
        burst, rate = self.policy["EwsMaxBurst"], self.policy["EwsRechargeRate"]
        if burst is None or rate is None:
            self.balance, self._blocked = None, False
        elif self.balance is None:
            self.balance = float(burst)
        else:
            self.balance = min(float(burst), self.balance + (now - self._updated) * 1000 * rate / HOUR_MS)
            if self.balance >= 0:
                self._blocked = False
        self._updated = now
        while self._window and self._window[0][0] <= now - 60:
            self._window_ms -= self._window.popleft()[1]

    def _cutoff_backoff(self) -> int:
        """Milliseconds until a caller at its cutoff balance has recharged to zero (0: not blocked)."""
        cutoff, rate = self.policy["EwsCutoffBalance"], self.policy["EwsRechargeRate"]
        if self.balance is None or cutoff is None or rate is None:
            return 0
        if self.balance < -cutoff:
            self._blocked = True
        if not self._blocked:
            return 0
        return int(-self.balance * HOUR_MS / rate) + 1 if rate else int(HOUR_MS)

    def _window_backoff(self, now: float) -> int:
        """Milliseconds until the last minute's request time is under EwsPercentTimeInCAS (0: it is)."""
        percent = self.policy["EwsPercentTimeInCAS"]
        if percent is None:
            return 0
        allowed = percent * MINUTE_MS / 100
        excess = self._window_ms - allowed
        if excess < 0:
            return 0
        for when, ms in self._window:
            excess -= ms
            if excess < 0:
                return int((when + 60 - now) * 1000) + 1
        return int(MINUTE_MS)

    def _delay(self) -> float:
        """Traffic shaping: seconds to hold a request of a caller below zero, growing linearly from 0
        at zero to MAX_DELAY at the cutoff balance (or at -EwsMaxBurst without a cutoff)."""
        if self.balance is None or self.balance >= 0:
            return 0.0
        scale = self.policy["EwsCutoffBalance"] or self.policy["EwsMaxBurst"] or 1
        return MAX_DELAY * min(1.0, -self.balance / scale)

    # -- while it runs and when it ends ---------------------------------------------------------
    def charge(self, seconds: float) -> None:
        ms = seconds * 1000
        with self._lock:
            if self.balance is not None:
                self.balance -= ms
            self._window.append((time.monotonic(), ms))
            self._window_ms += ms

    def find_items(self, wanted: int, partial: bool) -> int:
        """Take up to ``wanted`` of EwsFindCountLimit: all of it, or (``partial``) what is left, or none."""
        limit = self.policy["EwsFindCountLimit"]
        with self._lock:
            granted = wanted if limit is None else min(wanted, max(0, limit - self.find_count))
            if granted < wanted and not partial:
                return 0
            self.find_count += granted
            return granted

    def hang(self, limit: int) -> None:
        with self._lock:
            if self.hanging >= limit:
                raise Throttled("ErrorExceededConnectionCount",
                                f"You have exceeded the maximum number of streaming connections ({limit}) "
                                "for your account. Close one and try again.")
            self.hanging += 1

    def end(self, ticket: Ticket) -> None:
        with self._lock:
            self.connections -= ticket.connected
            self.hanging -= ticket.hanging
            self.find_count -= ticket.find
            ticket.connected = ticket.hanging = False
            ticket.find = 0

    def release_connection(self, ticket: Ticket) -> None:
        with self._lock:
            self.connections -= ticket.connected
            ticket.connected = False

    def snapshot(self) -> str:
        """What Exchange writes to its IIS log: limit/used per resource (ms for times)."""
        p = self.policy
        percent = p["EwsPercentTimeInCAS"]
        return (f"Conn:{self.connections}/{_text(p['EwsMaxConcurrency'])},Hang:{self.hanging},"
                f"Balance:{_text(self.balance)}/{_text(p['EwsMaxBurst'])},"
                f"CAS:{_text(self._window_ms)}/{_text(None if percent is None else percent * MINUTE_MS / 100)},"
                f"FC:{self.find_count}/{_text(p['EwsFindCountLimit'])},Policy:{p.policy}")


@dataclass
class Ticket:
    """One admitted request's hold on its caller's budget; ``Budget.end`` gives it all back."""

    budget: Budget
    delay: float  # seconds to hold the request before it runs (traffic shaping)
    init: str = ""  # the budget snapshot when it was admitted (taken only for the access log)
    action: str = ""  # the SOAP operation, once read
    connected: bool = True
    hanging: bool = False
    find: int = 0
    hanging_limit: int = 10  # streaming connections allowed (HangingConnectionLimit)
    worked: float = 0.0  # seconds of request time charged
    started: float = field(default_factory=time.monotonic)

    @property
    def policy(self) -> Effective:
        return self.budget.policy

    def charge(self, seconds: float) -> None:
        self.worked += seconds
        self.budget.charge(seconds)

    def find_items(self, wanted: int, partial: bool) -> int:
        granted = self.budget.find_items(wanted, partial)
        self.find += granted
        return granted

    def hang(self) -> None:
        self.budget.hang(self.hanging_limit)
        self.hanging = True

    def per_item(self) -> None:
        """The per-item check of a batch: sleep while the process is over CPUStartPercent."""
        cpu.throttle(self.policy["CPUStartPercent"])
