"""The transport service: every entry point's ``Submitter``, and the pipeline behind it.

``submit`` stores the message in the queue database and returns after the group commit that
holds it. The message is then processed at once (no polling for new mail): the categorizer
resolves its recipients and picks their next hops, local recipients are delivered into their
mailboxes in the worker pool, remote ones handed to ``RemoteDelivery``. Transient failures
(4xx) are retried on a schedule, permanent ones (5xx) fail; failures, delays past the delay
notification timeout, expiry and (on NOTIFY=SUCCESS) success produce DSNs, which are queued
in the same commit as the recipient states they report.

Crash safety: before a message is processed its crash count is incremented (a new message is
stored with it, in the commit that makes it durable), and it is cleared when the processing's
results are committed. A message found with ``poison_threshold`` crashes is moved to the poison
queue (suspended) instead of being tried again. Whatever was delivered before a crash is
recognised on redelivery (local delivery is idempotent by Message-ID; a Message-ID is added at
submission if the message had none).

Transport agents (``agents``, when configured) run in the worker pool: ``on_submitted`` before a
message is stored (from every entry point, DSNs included: what the agents leave is what is
stored; ``Reject`` refuses the submission, ``Quarantine`` stores it suspended), ``on_resolved``
and ``on_routed`` after categorization (content changes are stored and delivered; ``Reject``
fails the recipients), ``on_deliver`` before each recipient's delivery (content changes apply to
that copy; ``Reject`` fails that recipient).

Retries and admin changes made from another process (``mailroom queue retry``, ``message
resume``) are found by one indexed query that runs at the next retry due time and at least
every ``queue_scan_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import fcntl
import logging
import os
import re
import sqlite3
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mailroom.server.config import Config
from mailroom.store import Store

from . import dsn
from .agents import Agents, MailItem, Quarantine, Reject
from .categorizer import UNREACHABLE_DELIVERY, Route, cached_routes, categorize, expand, record_expansion
from .delivery import LocalDeliveries
from .envelope import Recipient, Submission, SubmissionRefused
from .headers import read_headers, with_return_path
from .local import LocalMessage
from .metrics import TransportMetrics
from .outbound import RecipientOutcome
from .queue import (
    ACTIVE,
    DELIVERED,
    FAILED,
    READY,
    RETRY,
    SUSPENDED,
    NewMessage,
    QueueDatabase,
    QueuedMessage,
    QueuedRecipient,
    body_of,
    insert_message,
    now,
    remove_if_done,
    reserve_ids,
    select_message,
    select_recipients,
)
from .tracking import MessageTrackingLog, TrackingEvent

log = logging.getLogger(__name__)

T = TypeVar("T")
_OUTCOMES = {DELIVERED: "delivered", RETRY: "deferred", FAILED: "failed"}
LEASE_SECONDS = 600.0  # an in-flight message's lease; a dead process's leases are cleared at start
_LEADING_STATUS = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\s+")
ID_BLOCK = 100  # message ids reserved at a time for the agents' on_submitted


class RemoteDelivery(Protocol):
    """Delivery to another server (``outbound.Outbound``): one outcome per recipient, in order;
    never raises for network or DNS trouble."""

    async def deliver(self, domain: str, mail_from: str, recipients: list[Recipient], raw: bytes,
                      envid: str | None = None, ret: str | None = None) -> list[RecipientOutcome]: ...


@dataclass(frozen=True)
class Settings:
    """Exchange's defaults (reference section 5.3), in seconds."""

    hostname: str
    smart_host: str = ""
    transient_failure_retry_count: int = 6
    transient_failure_retry_interval: float = 300
    message_retry_interval: float = 900
    delay_notification_timeout: float = 4 * 3600
    message_expiration_timeout: float = 2 * 86400
    poison_threshold: int = 2
    queue_scan_interval: float = 5
    max_concurrent: int = 200  # messages processed at once

    @classmethod
    def from_config(cls, config: Config, hostname: str) -> Settings:
        return cls(hostname=hostname,
                   # transport.smart_host is troute's option; it only names the next hop here.
                   smart_host=config.values.get("transport.smart_host", ""),
                   transient_failure_retry_count=config["transport.transient_failure_retry_count"],
                   transient_failure_retry_interval=config["transport.transient_failure_retry_interval"],
                   message_retry_interval=config["transport.message_retry_interval"],
                   delay_notification_timeout=config["transport.delay_notification_timeout"],
                   message_expiration_timeout=config["transport.message_expiration_timeout"],
                   poison_threshold=config["transport.poison_threshold"],
                   queue_scan_interval=config["transport.queue_scan_interval"])

    def retry_delay(self, attempts: int) -> float:
        """The first ``transient_failure_retry_count`` retries come at the short interval, later
        ones at the message retry interval."""
        if attempts <= self.transient_failure_retry_count:
            return self.transient_failure_retry_interval
        return self.message_retry_interval


@dataclass
class _Result:
    """What one processing pass decided for a recipient."""

    recipient: QueuedRecipient
    route: Route
    status: str
    response: str
    attempts: int
    due: float
    delay_sent: bool
    dsn_action: str = ""  # the DSN this result asks for ("failed", "delayed", "delivered", "relayed")
    remote_host: str = ""
    duplicate: bool = False


@dataclass
class _Work:
    message: QueuedMessage
    recipients: list[QueuedRecipient]
    body: bytes
    changed: bool = False  # an agent changed the body: store it


@dataclass
class _Poisoned:
    message: QueuedMessage


@dataclass
class _Finished:
    dsn_ids: list[int] = field(default_factory=list)
    removed: bool = False


class TransportService:
    """Implements ``Submitter``; runs on the server's event loop, store work in ``executor``."""

    def __init__(self, store: Store, data_dir: Path, settings: Settings, tracking: MessageTrackingLog,
                 executor: Executor, remote: RemoteDelivery | None = None,
                 metrics: TransportMetrics | None = None, agents: Agents | None = None) -> None:
        self.store = store
        self.agents = agents
        self._ids: deque[int] = deque()  # reserved message ids
        self.metrics = metrics
        self.settings = settings
        self.tracking = tracking
        self.executor = executor
        self.remote = remote
        self.local = LocalDeliveries(store, waiting=self.processing)  # group-committed, in threads of its own
        self.path = data_dir / "queue" / "mail.que"
        self.db: QueueDatabase | None = None
        self._lock_file: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[int, asyncio.Task] = {}
        self._awaiting_categorization: set[int] = set()
        self._delivering: dict[str, tuple[asyncio.Lock, list[int]]] = {}  # Message-ID -> lock, users
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task | None = None
        self._limit = asyncio.Semaphore(settings.max_concurrent)
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the queue (one server per queue: a lock file says so), clear the leases a dead
        process left, and start processing what is due."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise OSError(f"{self.path} is in use by another mailroom server") from exc
        self._loop = asyncio.get_running_loop()
        self.db = await self._loop.run_in_executor(self.executor, QueueDatabase, self.path)
        await self._run(lambda conn: conn.execute("UPDATE messages SET lease_until = 0 WHERE lease_until > 0"))
        self._scheduler = asyncio.create_task(self._schedule(), name="transport scheduler")

    async def stop(self, grace: float = 10) -> None:
        """Stop taking mail, let in-flight processing finish (up to ``grace`` seconds), then
        cancel the rest (their crash counts are given back: a shutdown is not a crash)."""
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.cancel()
        tasks = list(self._inflight.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.local.close()
        if self.db is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.db.close)
        if self._lock_file is not None:
            os.close(self._lock_file)

    # -- what back pressure reads ----------------------------------------------------------------
    def submission_queue_length(self) -> int:
        """Messages committed but not yet categorized."""
        return len(self._awaiting_categorization)

    def pending_commits(self) -> int:
        """Queue database operations waiting for (or in) a commit."""
        return self.db.pending() if self.db is not None else 0

    def processing(self) -> int:
        """Messages in a processing pass now. A pass's tracking records are written after its
        commit, so an empty queue with nothing processing is a queue whose history is complete."""
        return len(self._inflight)

    # -- submission --------------------------------------------------------------------------------
    async def submit(self, submission: Submission) -> str:
        """Queue ``submission``; returns its internal message id after the commit that holds it."""
        message_id = None
        if self.agents:
            message_id = await self._reserve_id()
            submission = await self._in_pool(partial(self._submitted, submission, message_id))
        return await self._queue(submission, message_id)

    def submit_threadsafe(self, submission: Submission, timeout: float = 60) -> str:
        """``submit`` from a worker thread (EWS sending runs in one). The agents run in this thread:
        the pool's threads may all be waiting here."""
        assert self._loop is not None
        message_id = None
        if self.agents:
            message_id = asyncio.run_coroutine_threadsafe(self._reserve_id(), self._loop).result(timeout)
            submission = self._submitted(submission, message_id)
        return asyncio.run_coroutine_threadsafe(self._queue(submission, message_id), self._loop).result(timeout)

    async def _reserve_id(self) -> int:
        if not self._ids:
            self._ids.extend(await self._run(partial(reserve_ids, count=ID_BLOCK)))
        return self._ids.popleft()

    def _submitted(self, submission: Submission, message_id: int) -> Submission:
        """The agents' on_submitted: the submission as they leave it (a worker thread)."""
        raw, recipients, hold = self._on_submitted(submission.mail_from, list(submission.recipients), submission.raw,
                                                   message_id)
        return replace(submission.with_content(raw), recipients=tuple(recipients), hold=hold or submission.hold)

    def _on_submitted(self, mail_from: str, recipients: list[Recipient], raw: bytes,
                      message_id: int) -> tuple[bytes, list[Recipient], str]:
        """Content, recipients and quarantine reason after on_submitted; SubmissionRefused on a Reject."""
        assert self.agents is not None
        item = MailItem(mail_from, recipients, raw, internal_id=str(message_id))
        hold = ""
        try:
            self.agents.fire("on_submitted", item)
        except Reject as refused:
            log.info("transport agent refused message %s: %s", message_id, refused.reply)
            raise SubmissionRefused(refused.reply) from None
        except Quarantine as held:
            hold = held.description
        return item.content(), item.recipients, hold

    async def _queue(self, submission: Submission, message_id: int | None) -> str:
        if self._stopping or self.db is None:
            raise SubmissionRefused("421 4.3.2 System not accepting network messages")
        if not submission.recipients:
            raise SubmissionRefused("554 5.5.1 No valid recipients")
        new = replace(self._new_message(submission), id=message_id)
        if new.status == SUSPENDED:
            message_id = await self._run(partial(insert_message, new=new))
            self._quarantined(message_id, new)
            return str(message_id)
        work = await self._run(partial(_insert_taken, new=new, at=now()))
        message_id = work.message.id
        self._awaiting_categorization.add(message_id)
        if submission.source == "STOREDRIVER":
            self.tracking.record(TrackingEvent(
                "SUBMIT", "STOREDRIVER", internal_message_id=str(message_id), message_id=new.internet_id,
                recipient_address=[r.address for r in submission.recipients], total_bytes=len(new.body),
                recipient_count=len(submission.recipients), message_subject=new.subject,
                sender_address=submission.submitter or submission.mail_from, return_path=submission.mail_from or "<>",
                connector_id=submission.connector, client_ip=submission.client_ip,
                source_context=f"ClientType:{submission.connector}"))
        self._start(message_id, work)
        return str(message_id)

    def _quarantined(self, message_id: int, new: NewMessage) -> None:
        log.warning("queued message %s suspended: %s", message_id, new.last_error)
        self.tracking.record(TrackingEvent(
            "AGENTINFO", "AGENT", internal_message_id=str(message_id), message_id=new.internet_id,
            recipient_address=[r[0] for r in new.recipients], recipient_count=len(new.recipients),
            total_bytes=len(new.body), message_subject=new.subject, sender_address=new.submitter or new.mail_from,
            return_path=new.mail_from or "<>", server_hostname=self.settings.hostname, message_info=new.last_error))

    def _new_message(self, submission: Submission) -> NewMessage:
        raw = submission.raw
        headers = submission.headers or read_headers(raw)
        internet_id = headers.message_id
        if not internet_id:  # the id local delivery recognises a redelivery by
            internet_id = email.utils.make_msgid(domain=self.settings.hostname)
            raw = f"Message-ID: {internet_id}\r\n".encode() + raw
        received = now()
        return NewMessage(
            internet_id=internet_id, mail_from=submission.mail_from.strip().removeprefix("<").removesuffix(">"),
            subject=headers.subject,
            source=submission.source, connector=submission.connector, client_ip=submission.client_ip,
            client_hostname=submission.client_hostname, submitter=submission.submitter, envid=submission.envid,
            ret=submission.ret, received=received, expires=received + self.settings.message_expiration_timeout,
            status=SUSPENDED if submission.hold else ACTIVE, last_error=submission.hold,
            body=raw, recipients=tuple((r.address, tuple(n.upper() for n in r.notify), r.orcpt)
                                       for r in submission.recipients))

    # -- scheduling --------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look for due work now (after a retry was scheduled or an admin change)."""
        self._wake.set()

    async def _schedule(self) -> None:
        while True:
            try:
                due, next_due = await self._run(partial(_due_work, at=now()))
            except Exception:
                log.exception("queue scan failed")
                due, next_due = [], None
            for message_id in due:
                self._start(message_id)
            timeout = self.settings.queue_scan_interval
            if next_due is not None:
                timeout = max(0.0, min(timeout, next_due - now()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    def _start(self, message_id: int, work: _Work | None = None) -> None:
        """Process ``message_id``: ``work`` when it was taken as it was stored, else take it first."""
        if message_id in self._inflight or self._stopping:
            if work is not None and self.db is not None:  # taken but not processed: not a crash
                self.db.run(partial(_release, message_id=message_id))
            return
        task = asyncio.create_task(self._process(message_id, work), name=f"message {message_id}")
        self._inflight[message_id] = task
        task.add_done_callback(lambda _t: self._inflight.pop(message_id, None))

    # -- processing --------------------------------------------------------------------------------
    async def _process(self, message_id: int, taken: _Work | None) -> None:
        started = taken is not None
        try:
            async with self._limit:
                work = taken or await self._run(partial(_begin, message_id=message_id, at=now(),
                                                        threshold=self.settings.poison_threshold), durable=False)
                if isinstance(work, _Poisoned):
                    self._poisoned(work.message)
                    return
                if work is None:
                    return
                started = True
                results = await self._deliver(work)
                dsns = self._dsns(work, results)
                if self.agents and dsns:
                    dsns = await self._submitted_dsns(dsns)
                finished = await self._run(partial(_finish, message_id=message_id, results=results,
                                                   dsns=[d for d, _ in dsns], body=work.body if work.changed else None),
                                           durable=False)
                started = False
                self._track(work, results, dsns, finished)
                for (new, _group), dsn_id in zip(dsns, finished.dsn_ids if finished else [], strict=False):
                    if new.status == SUSPENDED:
                        self._quarantined(dsn_id, new)
                    else:
                        self._start(dsn_id)
                if any(r.status == RETRY for r in results):
                    self.wake()
        except asyncio.CancelledError:
            if started and self.db is not None:  # shutdown, not a crash: give the crash count back
                self.db.run(partial(_release, message_id=message_id))
            raise
        except Exception:
            log.exception("processing queued message %s failed", message_id)
        finally:
            self._awaiting_categorization.discard(message_id)

    async def _deliver(self, work: _Work) -> list[_Result]:
        message = work.message
        if message.categorized:
            routes = [Route(r.address, r.next_hop, r.delivery_type) for r in work.recipients]
        else:
            routes = cached_routes(self.store, [r.address for r in work.recipients])
            if routes is None:
                await self._expand_groups(work)
                routes = await self._in_pool(partial(categorize, self.store, [r.address for r in work.recipients],
                                                     smart_host=self.settings.smart_host,
                                                     remote=self.remote is not None))
            self._awaiting_categorization.discard(message.id)
        pairs = list(zip(work.recipients, routes, strict=True))
        results: list[_Result] = []
        if self.agents and not message.categorized:
            refusal = await self._in_pool(partial(self._routed, work, [p for p in pairs if not p[1].failure]))
            if refusal:
                results = [self._failed(r, route, refusal) for r, route in pairs if not route.failure]
                pairs = [p for p in pairs if p[1].failure]
        local = [(r, route) for r, route in pairs if route.local]
        remote: dict[tuple[str, str], list[tuple[QueuedRecipient, Route]]] = defaultdict(list)
        for recipient, route in pairs:
            if route.failure:
                results.append(self._failed(recipient, route, route.failure))
            elif route.delivery_type == UNREACHABLE_DELIVERY:
                results.append(self._transient(message, recipient, route,
                                               "451 4.4.0 No route to this domain: remote delivery is unavailable"))
            elif not route.local:
                remote[(route.next_hop, route.address.rpartition("@")[2].lower())].append((recipient, route))
        if local:
            results += await self._deliver_local(work, local)
        if remote:
            batches = await asyncio.gather(*(self._deliver_remote(work, domain, batch)
                                             for (_hop, domain), batch in remote.items()))
            results += [r for batch in batches for r in batch]
        return results

    async def _expand_groups(self, work: _Work) -> None:
        """Replace group recipients by their members, durably, before routing (see categorizer)."""
        expansions = await self._in_pool(partial(expand, self.store, [r.address for r in work.recipients]))
        if expansions:
            work.recipients = await self._run(partial(record_expansion, message=work.message, due=work.recipients,
                                                      expansions=expansions))
        for e in expansions:
            self._event("EXPAND", "ROUTING", work.message, list(e.members), related_recipient_address=e.group)
            if e.duplicates:
                self._event("DUPLICATEEXPAND", "ROUTING", work.message, list(e.duplicates),
                            related_recipient_address=e.group)

    async def _deliver_local(self, work: _Work, pairs: list[tuple[QueuedRecipient, Route]]) -> list[_Result]:
        copies, results = await self._before_delivery(work, pairs)
        for body, local in copies:
            results += await self._deliver_copy(work, body, local)
        return results

    async def _deliver_copy(self, work: _Work, body: bytes,
                            local: list[tuple[QueuedRecipient, Route]]) -> list[_Result]:
        # a report is from <>: ours, or one another server sent (a DSN received over SMTP is a report too)
        item_class = dsn.item_class(body) if not work.message.mail_from else "IPM.Note"
        message = LocalMessage(with_return_path(body, work.message.mail_from), [route.address for _r, route in local],
                               item_class, work.message.mail_from)
        try:
            async with self._one_at_a_time(work.message.internet_id):
                outcome = await self.local.deliver(message)
        except Exception as exc:
            log.exception("local delivery of queued message %s failed", work.message.id)
            return [self._transient(work.message, r, route, f"451 4.3.0 Local delivery failed: {exc}")
                    for r, route in local]
        results = []
        for recipient, route in local:
            address = route.address.lower()
            if address in outcome.not_local:  # the mailbox went away after categorization
                results.append(self._failed(recipient, route, "550 5.1.1 User unknown"))
            else:
                results.append(self._delivered(recipient, route, "250 2.0.0 Delivered", "delivered",
                                               duplicate=address in outcome.duplicates))
        await self._submit_outgoing(outcome.outgoing)
        return results

    async def _submit_outgoing(self, outgoing: list[Submission]) -> None:
        """Submit what delivery made to send (automatic replies, resources' meeting answers). The
        delivery stands whatever happens to them: one that is not taken is logged and dropped."""
        for submission in outgoing:
            try:
                await self.submit(submission)
            except SubmissionRefused as refused:
                log.warning("%s message from %s to %s not queued: %s", submission.connector, submission.submitter,
                            submission.recipients[0].address, refused.reply)
            except Exception:
                log.exception("%s message from %s not queued", submission.connector, submission.submitter)

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, internet_id: str) -> AsyncIterator[None]:
        """Local deliveries of one Message-ID run one after another: the store recognises a
        redelivery by Message-ID, which needs the first copy committed before the second looks."""
        key = internet_id.lower()
        entry = self._delivering.setdefault(key, (asyncio.Lock(), [0]))
        entry[1][0] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1][0] -= 1
            if not entry[1][0]:
                del self._delivering[key]

    async def _deliver_remote(self, work: _Work, domain: str,
                              pairs: list[tuple[QueuedRecipient, Route]]) -> list[_Result]:
        copies, results = await self._before_delivery(work, pairs)
        for body, batch in copies:
            results += await self._send(work, domain, body, batch)
        return results

    async def _send(self, work: _Work, domain: str, body: bytes,
                    batch: list[tuple[QueuedRecipient, Route]]) -> list[_Result]:
        assert self.remote is not None
        message = work.message
        envelope = [Recipient(route.address, r.notify, r.orcpt) for r, route in batch]
        try:
            outcomes = await self.remote.deliver(domain, message.mail_from, envelope, body,
                                                 message.envid, message.ret)
        except Exception as exc:  # the interface says it never raises; a bug there must not lose mail
            log.exception("remote delivery to %s failed", domain)
            return [self._transient(message, r, route, f"451 4.4.0 Remote delivery failed: {exc}")
                    for r, route in batch]
        results = []
        for (recipient, route), outcome in zip(batch, outcomes, strict=True):
            text = _LEADING_STATUS.sub("", outcome.text)  # a server's text starts with its own (RFC 2034)
            reply = f"{outcome.code or (550 if outcome.permanent else 451)} {outcome.enhanced} {text}"
            if outcome.delivered:
                results.append(self._delivered(recipient, route, reply, "relayed", remote_host=outcome.remote_host))
                if outcome.dsn_passed:  # RFC 3461 section 5.2.2: "relayed" only to a server without DSN
                    results[-1].dsn_action = ""
            elif outcome.permanent:
                results.append(self._failed(recipient, route, reply, remote_host=outcome.remote_host))
            else:
                results.append(self._transient(message, recipient, route, reply, remote_host=outcome.remote_host))
        return results

    # -- transport agents (their events run in the worker pool) ----------------------------------
    def _routed(self, work: _Work, pairs: list[tuple[QueuedRecipient, Route]]) -> str | None:
        """on_resolved and on_routed after categorization: the body as they leave it goes into
        ``work`` (and is stored); the reply when one rejects the message."""
        assert self.agents is not None
        item = MailItem(work.message.mail_from, [Recipient(route.address, r.notify, r.orcpt) for r, route in pairs],
                        work.body, internal_id=str(work.message.id))
        try:
            self.agents.fire("on_resolved", item)
            self.agents.fire("on_routed", item)
        except Reject as refused:
            return refused.reply
        finally:
            body = item.content()
            if body != work.body:
                work.body, work.changed = body, True
        return None

    async def _before_delivery(self, work: _Work, pairs: list[tuple[QueuedRecipient, Route]]
                               ) -> tuple[list[tuple[bytes, list[tuple[QueuedRecipient, Route]]]], list[_Result]]:
        """on_deliver for each recipient: the copies to deliver (recipients grouped by the content
        the agents left) and the results of the recipients an agent rejected."""
        if not self.agents:
            return [(work.body, pairs)], []
        return await self._in_pool(partial(self._on_deliver, work, pairs))

    def _on_deliver(self, work: _Work, pairs: list[tuple[QueuedRecipient, Route]]
                    ) -> tuple[list[tuple[bytes, list[tuple[QueuedRecipient, Route]]]], list[_Result]]:
        assert self.agents is not None
        copies: dict[bytes, list[tuple[QueuedRecipient, Route]]] = defaultdict(list)
        refused = []
        for recipient, route in pairs:
            target = Recipient(route.address, recipient.notify, recipient.orcpt)
            item = MailItem(work.message.mail_from, [target], work.body, internal_id=str(work.message.id))
            try:
                self.agents.fire("on_deliver", item, target)
            except Reject as rejected:
                refused.append(self._failed(recipient, route, rejected.reply))
                continue
            copies[item.content()].append((recipient, route))
        return list(copies.items()), refused

    async def _submitted_dsns(self, dsns: list[tuple[NewMessage, list[_Result]]]
                              ) -> list[tuple[NewMessage, list[_Result]]]:
        """on_submitted for the DSNs a pass produced: changed, suspended, or dropped when rejected."""
        kept = []
        for new, group in dsns:
            message_id = await self._reserve_id()
            recipients = [Recipient(address, notify, orcpt) for address, notify, orcpt in new.recipients]
            try:
                raw, recipients, hold = await self._in_pool(partial(self._on_submitted, new.mail_from, recipients,
                                                                    new.body, message_id))
            except SubmissionRefused as refused:
                log.warning("a transport agent dropped the DSN %s: %s", new.internet_id, refused.reply)
                continue
            if recipients:
                kept.append((replace(new, id=message_id, body=raw, status=SUSPENDED if hold else ACTIVE,
                                     last_error=hold, recipients=tuple((r.address, r.notify, r.orcpt)
                                                                       for r in recipients)), group))
        return kept

    def _delivered(self, recipient: QueuedRecipient, route: Route, reply: str, action: str,
                   **extra: Any) -> _Result:
        return _Result(recipient, route, DELIVERED, reply, recipient.attempts + 1, now(), recipient.delay_sent,
                       dsn_action=action if dsn.wanted(recipient.notify, action) else "", **extra)

    def _failed(self, recipient: QueuedRecipient, route: Route, reply: str, **extra: Any) -> _Result:
        return _Result(recipient, route, FAILED, reply, recipient.attempts + 1, now(), recipient.delay_sent,
                       dsn_action="failed" if dsn.wanted(recipient.notify, "failed") else "", **extra)

    def _transient(self, message: QueuedMessage, recipient: QueuedRecipient, route: Route, reply: str,
                   **extra: Any) -> _Result:
        """A 4xx: retry later; past the expiry time, fail (4.4.7); past the delay notification
        timeout, once, a delay DSN."""
        at = now()
        if at >= message.expires:
            return self._failed(recipient, route, f"550 4.4.7 Message expired; last error: {reply}", **extra)
        attempts = recipient.attempts + 1
        result = _Result(recipient, route, RETRY, reply, attempts, at + self.settings.retry_delay(attempts),
                         recipient.delay_sent, **extra)
        if (not recipient.delay_sent and at - message.received >= self.settings.delay_notification_timeout
                and dsn.wanted(recipient.notify, "delayed")):
            result.dsn_action, result.delay_sent = "delayed", True
        return result

    def _dsns(self, work: _Work, results: list[_Result]) -> list[tuple[NewMessage, list[_Result]]]:
        """One DSN per action for the recipients that asked for it; none for a message from <>."""
        message = work.message
        if not message.mail_from:
            return []
        by_action: dict[str, list[_Result]] = defaultdict(list)
        for result in results:
            if result.dsn_action:
                by_action[result.dsn_action].append(result)
        return [(dsn.queued(action=action, hostname=self.settings.hostname, message=message, body=work.body,
                            expiration=self.settings.message_expiration_timeout,
                            recipients=[dsn.DsnRecipient(r.route.address, action, dsn.enhanced(r.response), r.response,
                                                         r.recipient.orcpt, r.remote_host) for r in group]), group)
                for action, group in by_action.items()]

    # -- tracking ------------------------------------------------------------------------------------
    def _event(self, event_id: str, source: str, message: QueuedMessage, addresses: list[str],
               statuses: list[str] | None = None, **extra: Any) -> None:
        self.tracking.record(TrackingEvent(
            event_id, source, internal_message_id=str(message.id), message_id=message.internet_id,
            recipient_address=addresses, recipient_status=statuses or [], total_bytes=message.size,
            recipient_count=len(addresses), message_subject=message.subject,
            sender_address=message.submitter or message.mail_from, return_path=message.mail_from or "<>",
            connector_id=message.connector, server_hostname=self.settings.hostname, **extra))

    def _track(self, work: _Work, results: list[_Result], dsns: list[tuple[NewMessage, list[_Result]]],
               finished: _Finished | None) -> None:
        message = work.message
        for r in results:
            if self.metrics is not None:
                self.metrics.count_delivery("local" if r.route.local else "remote", _OUTCOMES[r.status])
            if r.route.address.lower() != r.recipient.address.lower():
                self._event("RESOLVE", "ROUTING", message, [r.route.address],
                            related_recipient_address=r.recipient.address)
            address, status = [r.route.address], [r.response]
            if r.status == DELIVERED and r.route.local:
                event = "DUPLICATEDELIVER" if r.duplicate else "DELIVER"
                self._event(event, "STOREDRIVER", message, address, status, source_context=r.route.next_hop)
            elif r.status == DELIVERED:
                self._event("SEND", "SMTP", message, address, status, server_ip=r.remote_host)
            elif r.status == RETRY:
                source = "STOREDRIVER" if r.route.local else ("ROUTING" if r.route.delivery_type ==
                                                               UNREACHABLE_DELIVERY else "SMTP")
                self._event("DEFER", source, message, address, status)
            elif r.status == FAILED:
                source = "SMTP" if r.remote_host else ("QUEUE" if "expired" in r.response else "ROUTING")
                self._event("FAIL", source, message, address, status)
        for (new, group), dsn_id in zip(dsns, finished.dsn_ids if finished else [], strict=False):
            self.tracking.record(TrackingEvent(
                "DSN", "DSN", internal_message_id=str(dsn_id), message_id=new.internet_id,
                recipient_address=[r.route.address for r in group],
                recipient_status=[r.response for r in group], reference=message.internet_id,
                message_subject=new.subject, sender_address=message.mail_from, return_path="<>",
                total_bytes=len(new.body), server_hostname=self.settings.hostname))

    def _poisoned(self, message: QueuedMessage) -> None:
        log.error("queued message %s crashed processing %d times: moved to the poison queue", message.id,
                  message.crash_count)
        self._event("POISONMESSAGE", "POISONMESSAGE", message, [],
                    message_info=f"crash count {message.crash_count}")

    # -- helpers ----------------------------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> T:
        """``durable=False`` for the pass's own bookkeeping (crash count and lease, then results):
        it must outlive a crash of the process, which it does unsynced (see QueueDatabase); the
        deliveries themselves are durable in the store, and a redelivery is recognised."""
        assert self.db is not None
        return await asyncio.wrap_future(self.db.run(fn, durable))

    async def _in_pool(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


# -- queue database operations (they run in the writer thread, inside a group commit) --------------
def _due_work(conn: sqlite3.Connection, at: float) -> tuple[list[int], float | None]:
    """Active messages with recipients due now, and the next due time after now."""
    due = [row[0] for row in conn.execute(
        "SELECT DISTINCT r.message_id FROM recipients r JOIN messages m ON m.id = r.message_id"
        " WHERE r.status IN (?, ?) AND r.due <= ? AND m.status = ? AND m.poison = 0 AND m.lease_until <= ?"
        " LIMIT 1000", (READY, RETRY, at, ACTIVE, at))]
    next_due = conn.execute(
        "SELECT min(r.due) FROM recipients r JOIN messages m ON m.id = r.message_id"
        " WHERE r.status IN (?, ?) AND r.due > ? AND m.status = ? AND m.poison = 0", (READY, RETRY, at, ACTIVE)
    ).fetchone()[0]
    return due, next_due


def _insert_taken(conn: sqlite3.Connection, new: NewMessage, at: float) -> _Work:
    """Store a new message already taken for processing, as ``_begin`` takes one (crash count 1,
    leased), in the commit that makes it durable: one queue operation and commit per message
    fewer, and its body not read back."""
    message_id = insert_message(conn, replace(new, crash_count=1, lease_until=at + LEASE_SECONDS))
    message = select_message(conn, message_id)
    assert message is not None
    return _Work(message, select_recipients(conn, message_id), new.body)


def _begin(conn: sqlite3.Connection, message_id: int, at: float, threshold: int) -> _Work | _Poisoned | None:
    """Take a message for processing: count the attempt as a crash until ``_finish`` clears it,
    and lease it; or, when it has crashed ``threshold`` times, move it to the poison queue."""
    message = select_message(conn, message_id)
    if message is None or message.status != ACTIVE or message.poison:
        return None
    if message.crash_count >= threshold:
        conn.execute("UPDATE messages SET poison = 1, status = ?, last_error = ? WHERE id = ?",
                     (SUSPENDED, f"crashed the transport {message.crash_count} times", message_id))
        return _Poisoned(replace(message, poison=True, status=SUSPENDED))
    due = [r for r in select_recipients(conn, message_id)
           if r.status in (READY, RETRY) and (r.due <= at or not message.categorized)]
    if not due:
        return None
    conn.execute("UPDATE messages SET crash_count = crash_count + 1, lease_until = ? WHERE id = ?",
                 (at + LEASE_SECONDS, message_id))
    body = body_of(conn, message_id)
    assert body is not None
    return _Work(message, due, body)


def _finish(conn: sqlite3.Connection, message_id: int, results: list[_Result],
            dsns: list[NewMessage], body: bytes | None = None) -> _Finished | None:
    """Record a processing pass: recipient states, the DSNs they call for, the crash count cleared,
    the body a routing agent changed; the message goes once every recipient is final. None when an
    admin removed it meanwhile."""
    if select_message(conn, message_id) is None:
        return None
    if body is not None:
        conn.execute("UPDATE messages SET body = ?, size = ? WHERE id = ?", (body, len(body), message_id))
    conn.executemany(
        "UPDATE recipients SET address = ?, next_hop = ?, delivery_type = ?, status = ?, attempts = ?, due = ?,"
        " last_response = ?, delay_sent = ? WHERE id = ?",
        [(r.route.address, r.route.next_hop, r.route.delivery_type, r.status, r.attempts, r.due, r.response,
          int(r.delay_sent), r.recipient.id) for r in results])
    errors = [r.response for r in results if r.status == RETRY]
    conn.execute("UPDATE messages SET categorized = 1, crash_count = 0, lease_until = 0, last_error = ? WHERE id = ?",
                 (errors[-1] if errors else "", message_id))
    finished = _Finished([insert_message(conn, new) for new in dsns])
    finished.removed = remove_if_done(conn, message_id)
    return finished


def _release(conn: sqlite3.Connection, message_id: int) -> None:
    conn.execute("UPDATE messages SET crash_count = max(crash_count - 1, 0), lease_until = 0 WHERE id = ?",
                 (message_id,))
