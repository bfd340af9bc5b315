"""The durable mail queue: one SQLite database per transport server (``<data_dir>/queue/mail.que``),
as Exchange keeps one mail.que per server, whatever the mailbox store's back end is.

A message's body is stored once; each envelope recipient is a row with its own state (ready,
retry, delivered, failed, expanded), next hop, attempts, due time and last response. Every
write goes through one writer thread that commits whatever arrived while the previous commit
ran (group commit): concurrent submitters share one fsync, and each caller's future resolves
only after the commit that holds its work (WAL, synchronous=FULL).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
SCHEMA_VERSION = 1
MAX_BATCH = 1000  # operations per commit

# Recipient states. Final ones never change again; a message whose recipients are all final is removed.
READY, RETRY, DELIVERED, FAILED, EXPANDED = "ready", "retry", "delivered", "failed", "expanded"
FINAL = (DELIVERED, FAILED, EXPANDED)
ACTIVE, SUSPENDED = "Active", "Suspended"
UNREACHABLE = "Unreachable Domain"  # Exchange's NextHopDomain of the Unreachable queue

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    internet_id TEXT NOT NULL,
    mail_from TEXT NOT NULL,
    size INTEGER NOT NULL,
    subject TEXT NOT NULL,
    source TEXT NOT NULL,
    connector TEXT NOT NULL,
    client_ip TEXT NOT NULL,
    client_hostname TEXT NOT NULL,
    submitter TEXT,
    envid TEXT,
    ret TEXT,
    received REAL NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL,
    categorized INTEGER NOT NULL DEFAULT 0,
    poison INTEGER NOT NULL DEFAULT 0,
    crash_count INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    original TEXT NOT NULL,
    next_hop TEXT NOT NULL DEFAULT '',
    delivery_type TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    last_response TEXT NOT NULL DEFAULT '',
    notify TEXT NOT NULL DEFAULT '',
    orcpt TEXT,
    delay_sent INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS recipients_message ON recipients(message_id);
CREATE INDEX IF NOT EXISTS recipients_due ON recipients(status, due);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, fsync on every commit,
    and waiting rather than failing when another process (the CLI) holds the write lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"{path} has queue schema {version}; this mailroom knows up to {SCHEMA_VERSION}")
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        for statement in filter(str.strip, _SCHEMA.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    return conn


@dataclass(frozen=True)
class QueuedRecipient:
    id: int
    address: str
    original: str
    next_hop: str
    delivery_type: str
    status: str
    attempts: int
    due: float
    last_response: str
    notify: tuple[str, ...]
    orcpt: str | None
    delay_sent: bool


@dataclass(frozen=True)
class QueuedMessage:
    id: int
    internet_id: str
    mail_from: str
    size: int
    subject: str
    source: str
    connector: str
    client_ip: str
    client_hostname: str
    submitter: str | None
    envid: str | None
    ret: str | None
    received: float
    expires: float
    status: str
    categorized: bool
    poison: bool
    crash_count: int
    lease_until: float
    last_error: str


_MESSAGE_COLUMNS = ("id, internet_id, mail_from, size, subject, source, connector, client_ip, client_hostname, "
                    "submitter, envid, ret, received, expires, status, categorized, poison, crash_count, "
                    "lease_until, last_error")


def message_of(row: sqlite3.Row) -> QueuedMessage:
    return QueuedMessage(*row[:15], bool(row[15]), bool(row[16]), row[17], row[18], row[19])


def recipient_of(row: sqlite3.Row) -> QueuedRecipient:
    return QueuedRecipient(id=row["id"], address=row["address"], original=row["original"], next_hop=row["next_hop"],
                           delivery_type=row["delivery_type"], status=row["status"], attempts=row["attempts"],
                           due=row["due"], last_response=row["last_response"],
                           notify=tuple(n for n in row["notify"].split(",") if n), orcpt=row["orcpt"],
                           delay_sent=bool(row["delay_sent"]))


def select_message(conn: sqlite3.Connection, message_id: int) -> QueuedMessage | None:
    row = conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
    return message_of(row) if row else None


def select_recipients(conn: sqlite3.Connection, message_id: int) -> list[QueuedRecipient]:
    rows = conn.execute("SELECT * FROM recipients WHERE message_id = ? ORDER BY id", (message_id,)).fetchall()
    return [recipient_of(r) for r in rows]


def body_of(conn: sqlite3.Connection, message_id: int) -> bytes | None:
    row = conn.execute("SELECT body FROM messages WHERE id = ?", (message_id,)).fetchone()
    return bytes(row[0]) if row else None


@dataclass(frozen=True)
class NewMessage:
    """What ``insert_message`` stores."""

    internet_id: str
    mail_from: str
    subject: str
    source: str
    connector: str
    client_ip: str
    client_hostname: str
    submitter: str | None
    envid: str | None
    ret: str | None
    received: float
    expires: float
    body: bytes
    recipients: tuple[tuple[str, tuple[str, ...], str | None], ...]  # address, NOTIFY, ORCPT
    id: int | None = None  # one taken by ``reserve_ids``; None: the next one
    status: str = ACTIVE  # SUSPENDED: quarantined by a transport agent
    last_error: str = ""
    crash_count: int = 0  # 1 with a lease: stored already taken for processing
    lease_until: float = 0


def insert_message(conn: sqlite3.Connection, new: NewMessage) -> int:
    cursor = conn.execute(
        "INSERT INTO messages (id, internet_id, mail_from, size, subject, source, connector, client_ip,"
        " client_hostname, submitter, envid, ret, received, expires, status, last_error, crash_count, lease_until,"
        " body) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (new.id, new.internet_id, new.mail_from, len(new.body), new.subject, new.source, new.connector, new.client_ip,
         new.client_hostname, new.submitter, new.envid, new.ret, new.received, new.expires, new.status,
         new.last_error, new.crash_count, new.lease_until, new.body))
    message_id = int(cursor.lastrowid or 0)
    conn.executemany(
        "INSERT INTO recipients (message_id, address, original, status, due, notify, orcpt) VALUES (?,?,?,?,?,?,?)",
        [(message_id, address, address, READY, new.received, ",".join(notify), orcpt)
         for address, notify, orcpt in new.recipients])
    return message_id


def reserve_ids(conn: sqlite3.Connection, count: int) -> range:
    """``count`` message ids no other insert will take (AUTOINCREMENT continues after them): the
    internal id a transport agent sees before the message is stored."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
    last = max(row[0] if row else 0, conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0])
    if row:
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'", (last + count,))
    else:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', ?)", (last + count,))
    return range(last + 1, last + count + 1)


def remove_if_done(conn: sqlite3.Connection, message_id: int) -> bool:
    """Drop a message once none of its recipients has anything left to do."""
    left = conn.execute(f"SELECT count(*) FROM recipients WHERE message_id = ? AND status NOT IN {FINAL}",
                        (message_id,)).fetchone()[0]
    if left:
        return False
    conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
    return True


_Op = tuple[Callable[[sqlite3.Connection], Any], Future, bool]  # an operation, its future, whether to fsync


class QueueDatabase:
    """The queue database with its single writer thread. ``run(fn)`` queues ``fn(conn)`` for the
    next group commit and returns a future that resolves (to fn's result) after that commit; an
    operation that raises is rolled back alone (a savepoint each) and its future gets the error.

    ``run(fn, durable=False)`` is for bookkeeping that only has to survive the process, not the
    machine: a commit made of such operations alone is not fsynced (WAL with synchronous=NORMAL:
    it is in the operating system's hands when the future resolves, and the next fsynced commit
    makes it durable with itself). A kill -9 loses none of it; a power loss may lose the last of
    it, which may only cause work to be done again (a redelivery, recognised by Message-ID)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = connect(path)
        self._ops: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._fsynced = True  # the connection's synchronous setting: FULL (see connect) or NORMAL
        self._lock = threading.Lock()
        self._pending = 0
        self.commits = 0  # counters for the benchmark and the figures in the docs
        self.operations = 0
        self._thread = threading.Thread(target=self._run, name="mail.que writer", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[[sqlite3.Connection], T], durable: bool = True) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            self._pending += 1
        self._ops.put((fn, future, durable))
        return future

    def pending(self) -> int:
        """Operations queued or in the commit now running (uncommitted work, for back pressure)."""
        return self._pending

    def _run(self) -> None:
        while True:
            first = self._ops.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._ops.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                break
        self._conn.close()

    def _commit(self, batch: list[_Op]) -> None:
        outcomes: list[tuple[Future, Any, BaseException | None]] = []
        try:
            fsync = any(durable for _fn, _future, durable in batch)
            if fsync != self._fsynced:
                self._conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
                self._fsynced = fsync
            self._conn.execute("BEGIN IMMEDIATE")
            for fn, future, _durable in batch:
                self._conn.execute("SAVEPOINT op")
                try:
                    result = fn(self._conn)
                except Exception as exc:  # this operation alone is undone
                    self._conn.execute("ROLLBACK TO op")
                    outcomes.append((future, None, exc))
                else:
                    outcomes.append((future, result, None))
                self._conn.execute("RELEASE op")
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.exception("queue commit failed")
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            outcomes = [(future, None, exc) for _fn, future, _durable in batch]
        self.commits += 1
        self.operations += len(batch)
        with self._lock:
            self._pending -= len(batch)
        for future, result, error in outcomes:
            try:
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            except InvalidStateError:  # its caller went away (shutdown); the work is committed all the same
                pass

    def close(self) -> None:
        self._ops.put(None)
        self._thread.join(30)


def now() -> float:
    return time.time()

