"""Managing the queue (Exchange's Get-Queue, Get-Message, Retry-Queue, Suspend-/Resume-/Remove-/
Export-Message) over the queue database, from any process while the server runs: the CLI and
the web admin call this. The running server notices a change at its next queue scan
(``transport.queue_scan_interval``).

A message being delivered when it is removed finishes that delivery attempt (what was
delivered stays delivered), then is gone; a suspended one finishes its attempt and is not
tried again until resumed.
"""

from __future__ import annotations

import socket
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import dsn
from .categorizer import UNREACHABLE_DELIVERY
from .queue import (
    ACTIVE,
    FINAL,
    READY,
    RETRY,
    SUSPENDED,
    UNREACHABLE,
    QueuedMessage,
    QueuedRecipient,
    body_of,
    connect,
    insert_message,
    message_of,
    now,
    recipient_of,
    select_message,
    select_recipients,
)
from .tracking import MessageTrackingLog, TrackingEvent

SUBMISSION, POISON, UNREACHABLE_QUEUE = "Submission", "Poison", "Unreachable"
REMOVED_REPLY = "550 4.3.2 Message deleted by administrative action"


class QueueError(ValueError):
    """An operation the queue does not allow (the message says why)."""


@dataclass(frozen=True)
class QueueInfo:
    """One row of ``mailroom queue list`` (Get-Queue's columns)."""

    identity: str
    delivery_type: str
    status: str  # Active, Ready, Retry, Suspended
    message_count: int
    next_retry: float | None
    last_error: str


@dataclass(frozen=True)
class MessageInfo:
    """A message as one queue sees it (Get-Message): only that queue's recipients."""

    message: QueuedMessage
    queue: str
    status: str  # Active, Ready, Retry, Suspended
    recipients: list[QueuedRecipient] = field(default_factory=list)


class QueueAdmin:
    def __init__(self, data_dir: Path, tracking: MessageTrackingLog | None = None, hostname: str = "",
                 expiration: float = 2 * 86400) -> None:
        self.conn = connect(data_dir / "queue" / "mail.que")
        self.tracking = tracking
        self.hostname = hostname or socket.getfqdn()
        self.expiration = expiration

    def close(self) -> None:
        self.conn.close()

    # -- viewing ----------------------------------------------------------------------------------
    def messages(self, queue: str | None = None) -> list[MessageInfo]:
        """Every queued message in each queue it is in (or in ``queue`` only), as of one moment."""
        with self._transaction(write=False):
            return self._messages(queue)

    def _messages(self, queue: str | None) -> list[MessageInfo]:
        """Messages and recipients must be read in one transaction: read apart, a pass that
        finishes between the two reads makes a message and the DSN it produced both vanish."""
        found = []
        at = now()
        rows = self.conn.execute("SELECT * FROM messages ORDER BY id").fetchall()
        recipients: dict[int, list[QueuedRecipient]] = defaultdict(list)
        for row in self.conn.execute(f"SELECT * FROM recipients WHERE status NOT IN {FINAL} ORDER BY id"):
            recipients[row["message_id"]].append(recipient_of(row))
        for row in rows:
            message = message_of(row)
            for name, group in _queues_of(message, recipients[message.id]).items():
                if queue is None or name.lower() == queue.lower():
                    found.append(MessageInfo(message, name, _status(message, group, at), group))
        if queue is not None and not found and queue.lower() not in (SUBMISSION.lower(), POISON.lower(),
                                                                     UNREACHABLE_QUEUE.lower()):
            raise QueueError(f"there is no queue {queue!r} (mailroom queue list shows them)")
        return found

    def queues(self) -> list[QueueInfo]:
        """Submission, one per next hop, Unreachable and Poison (the last two only when not empty)."""
        by_queue: dict[str, list[MessageInfo]] = defaultdict(list)
        for info in self.messages():
            by_queue[info.queue].append(info)
        result = [_summary(SUBMISSION, "Undefined", by_queue.pop(SUBMISSION, []))]
        special = {name: by_queue.pop(name) for name in (UNREACHABLE_QUEUE, POISON) if name in by_queue}
        for name in sorted(by_queue):
            group = by_queue[name]
            result.append(_summary(name, group[0].recipients[0].delivery_type, group))
        if UNREACHABLE_QUEUE in special:
            result.append(_summary(UNREACHABLE_QUEUE, UNREACHABLE_DELIVERY, special[UNREACHABLE_QUEUE]))
        if POISON in special:
            result.append(_summary(POISON, "Undefined", special[POISON]))
        return result

    # -- acting -----------------------------------------------------------------------------------
    def retry(self, queue: str, resubmit: bool = False) -> int:
        """Retry-Queue: make the queue's recipients due now; with ``resubmit`` send them back
        through the categorizer (needed for the Unreachable queue). Returns the messages touched."""
        if queue.lower() == POISON.lower():
            raise QueueError("the poison queue cannot be retried as a whole; resume its messages one by one")
        at = now()
        with self._transaction():
            infos = [i for i in self._messages(queue) if i.message.status == ACTIVE]
            for info in infos:
                ids = [(at, r.id) for r in info.recipients]
                if resubmit:
                    self.conn.executemany("UPDATE recipients SET due = ?, next_hop = '', delivery_type = '',"
                                          " status = 'ready' WHERE id = ?", ids)
                    self.conn.execute("UPDATE messages SET categorized = 0 WHERE id = ?", (info.message.id,))
                else:
                    self.conn.executemany("UPDATE recipients SET due = ? WHERE id = ?", ids)
        if resubmit:
            for info in infos:
                self._track("RESUBMIT", info.message, [r.address for r in info.recipients])
        return len(infos)

    def suspend(self, message_id: int) -> None:
        with self._transaction():
            if self._message(message_id).poison:
                raise QueueError("a message in the poison queue is suspended already")
            self.conn.execute("UPDATE messages SET status = ? WHERE id = ?", (SUSPENDED, message_id))

    def resume(self, message_id: int) -> None:
        """Resume a suspended message; one from the poison queue goes back for processing."""
        with self._transaction():
            message = self._message(message_id)
            self.conn.execute("UPDATE messages SET status = ?, poison = 0, crash_count = 0 WHERE id = ?",
                              (ACTIVE, message_id))
        if message.poison:
            self._track("POISONMESSAGE", message, [], "released from the poison queue")

    def remove(self, message_id: int, ndr: bool = True) -> None:
        """Remove-Message: with ``ndr`` (the default, as Exchange), the sender gets a non-delivery
        report for the recipients not yet delivered."""
        with self._transaction():
            message = self._message(message_id)
            if not message.categorized and not message.poison and message.status != SUSPENDED:
                raise QueueError("a message in the Submission queue cannot be removed; try again in a moment")
            pending = [r for r in select_recipients(self.conn, message_id) if r.status not in FINAL]
            body = body_of(self.conn, message_id) or b""
            report = [dsn.DsnRecipient(r.address, "failed", "4.3.2", REMOVED_REPLY, r.orcpt) for r in pending
                      if dsn.wanted(r.notify, "failed")]
            self.conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if ndr and report and message.mail_from:
                insert_message(self.conn, dsn.queued(action="failed", hostname=self.hostname, message=message,
                                                     body=body, recipients=report, expiration=self.expiration))
        self._track("FAIL", message, [r.address for r in pending], REMOVED_REPLY)

    def export(self, message_id: int) -> bytes:
        """Export-Message: the content of a suspended message."""
        with self._transaction(write=False):
            if self._message(message_id).status != SUSPENDED:
                raise QueueError("only a suspended message can be exported (mailroom message suspend first)")
            return body_of(self.conn, message_id) or b""

    # -- helpers -------------------------------------------------------------------------------------
    def _message(self, message_id: int) -> QueuedMessage:
        message = select_message(self.conn, message_id)
        if message is None:
            raise QueueError(f"there is no message {message_id} in the queue")
        return message

    def _transaction(self, write: bool = True) -> _Transaction:
        return _Transaction(self.conn, write)

    def _track(self, event_id: str, message: QueuedMessage, addresses: list[str], info: str = "") -> None:
        if self.tracking is not None:
            self.tracking.record(TrackingEvent(
                event_id, "ADMIN", internal_message_id=str(message.id), message_id=message.internet_id,
                recipient_address=addresses, message_subject=message.subject, sender_address=message.mail_from,
                return_path=message.mail_from or "<>", message_info=info, server_hostname=self.hostname))


class _Transaction:
    """BEGIN IMMEDIATE (or, to read one snapshot, BEGIN) ... COMMIT (or ROLLBACK) on the queue
    connection: what an admin action reads is what it changes."""

    def __init__(self, conn: sqlite3.Connection, write: bool) -> None:
        self.conn = conn
        self.write = write

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _queues_of(message: QueuedMessage, pending: list[QueuedRecipient]) -> dict[str, list[QueuedRecipient]]:
    """The queues a message is in, with its recipients in each."""
    if message.poison:
        return {POISON: pending}
    if not message.categorized:
        return {SUBMISSION: pending}
    queues: dict[str, list[QueuedRecipient]] = defaultdict(list)
    for r in pending:
        queues[UNREACHABLE_QUEUE if r.next_hop == UNREACHABLE else r.next_hop].append(r)
    return dict(queues)


def _status(message: QueuedMessage, recipients: list[QueuedRecipient], at: float) -> str:
    if message.status == SUSPENDED:
        return SUSPENDED
    if message.lease_until > at:
        return ACTIVE
    if any(r.status == RETRY for r in recipients):
        return "Retry"
    return "Ready" if all(r.status == READY for r in recipients) else ACTIVE


def _summary(name: str, delivery_type: str, infos: list[MessageInfo]) -> QueueInfo:
    statuses = {i.status for i in infos}
    if ACTIVE in statuses:
        status = ACTIVE
    elif statuses == {SUSPENDED}:
        status = SUSPENDED
    elif "Retry" in statuses and "Ready" not in statuses:
        status = "Retry"
    else:
        status = "Ready"
    retries = [r for i in infos for r in i.recipients if r.status == RETRY]
    next_retry = min((r.due for r in retries), default=None)
    last_error = max(retries, key=lambda r: r.due).last_response if retries else ""
    if not last_error:
        last_error = next((i.message.last_error for i in infos if i.message.last_error), "")
    return QueueInfo(name, delivery_type, status, len(infos), next_retry, last_error)
