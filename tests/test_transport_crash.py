"""kill -9 at any moment loses no acknowledged message and duplicates none (ARCHITECTURE rule 2).

A real ``mailroom serve`` runs as a subprocess on a temporary data folder; smtplib clients send
concurrently and record which messages got their 250; the server is killed with SIGKILL at a
random moment and restarted. At the end, every acknowledged message is in each recipient's
mailbox exactly once, and nothing is there that was not sent.

SMTP's known window: a message whose DATA completed on the server but whose 250 was lost in
the kill is queued (the client will send it again, and the copy is recognised by its
Message-ID), so it may appear although the client did not see the 250. Only messages the
clients actually sent may appear.

The deterministic cases hold the store's write lock from the test so that local delivery
really blocks inside the server: messages acknowledged but not yet delivered when the server
is killed are delivered after the restart, and a message whose processing is killed twice
goes to the poison queue instead of crash-looping.
"""

from __future__ import annotations

import email
import email.policy
import os
import random
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import text

from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.store.query import Page

from .conftest import new_domain, new_mailbox, settle_queue

ENV = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
ROUNDS = 4
CLIENTS = 10


class ServerProcess:
    """``mailroom serve`` in a subprocess, its inbound SMTP port read from what it prints."""

    def __init__(self, data: Path, store_url: str, config: Path) -> None:
        self.data = data
        log = data / f"serve-{time.monotonic_ns()}.log"
        data.mkdir(parents=True, exist_ok=True)
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailroom", "serve", "--data", str(data), "--database", store_url,
             "--config", str(config), "--http", "127.0.0.1:0", "--https", "", "--smtp", "127.0.0.1:0",
             "--submission", "", "--metrics", ""],
            stdout=self._out, stderr=subprocess.STDOUT, text=True, env=ENV)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                if line.strip().startswith("SMTP smtp://"):
                    self.port = int(line.split("smtp://", 1)[1].split()[0].rsplit(":", 1)[1])
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {log.read_text()}")
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"serve did not start: {log.read_text()}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._out.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self._out.close()


def _config(tmp_path: Path, **transport: int) -> Path:
    path = tmp_path / "mailroom.toml"
    path.write_text("[transport]\n" + "".join(f"{k} = {v}\n" for k, v in transport.items()))
    return path


def _message(to: list[str], tag: str) -> tuple[str, bytes]:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "sender@elsewhere.example"
    msg["To"] = ", ".join(to)
    msg["Subject"] = f"crash test {tag}"
    msg["Message-ID"] = f"<{tag}@elsewhere.example>"
    msg.set_content(f"message {tag}\n")
    return msg["Message-ID"], msg.as_bytes()


class Clients:
    """Threads sending messages until told to stop or until the server goes away."""

    def __init__(self, port: int, mailboxes: list[Mailbox], round_: int) -> None:
        self.sent: dict[str, list[str]] = {}  # DATA was sent: Message-ID -> recipients
        self.acknowledged: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(port, mailboxes, f"r{round_}c{n}"), daemon=True)
                         for n in range(CLIENTS)]
        for thread in self._threads:
            thread.start()

    def _send(self, port: int, mailboxes: list[Mailbox], prefix: str) -> None:
        rng = random.Random(prefix)
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo("client.example.org")
                for n in range(1000):
                    if self._stop.is_set():
                        return
                    rcpts = [m.address for m in rng.sample(mailboxes, rng.randint(1, 2))]
                    message_id, raw = _message(rcpts, f"{prefix}m{n}-{uuid.uuid4().hex[:6]}")
                    client.mail("sender@elsewhere.example")
                    for rcpt in rcpts:
                        client.rcpt(rcpt)
                    with self._lock:
                        self.sent[message_id] = rcpts
                    code, _ = client.data(raw)
                    if code == 250:
                        with self._lock:
                            self.acknowledged.add(message_id)
        except (OSError, smtplib.SMTPException):
            return  # the server was killed

    def join(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _mailbox_ids(store: Store, mailbox: Mailbox) -> list[str]:
    inbox = store.folders.distinguished(mailbox, "inbox")
    items, _ = store.items.find(mailbox, inbox.id, page=Page(0, 10_000))
    ids = []
    for item in items:
        raw = store.items.mime(mailbox, item.id) or b""
        ids.append(str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"]))
    return ids


def _queue_count(data: Path, where: str = "1") -> int:
    with closing(sqlite3.connect(data / "queue" / "mail.que", timeout=30)) as conn:
        return conn.execute(f"SELECT count(*) FROM messages WHERE {where}").fetchone()[0]


def _wait(condition, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


@contextmanager
def _store_write_lock(store_url: str) -> Iterator[None]:
    """Hold the store's write lock (SQLite) or a lock on its items table (PostgreSQL) so that
    local delivery blocks inside the server; readers are not blocked."""
    if store_url.startswith("sqlite"):
        conn = sqlite3.connect(store_url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    store = Store.open(store_url, pool_size=1)
    try:
        with store.engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE items IN SHARE ROW EXCLUSIVE MODE"))
            yield
    finally:
        store.close()


@pytest.fixture
def setup(store: Store, tmp_path: Path) -> tuple[Path, list[Mailbox]]:
    domain = new_domain(store)
    return tmp_path / "data", [new_mailbox(store, domain, f"user{n}") for n in range(3)]


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(store, store_url, setup, tmp_path):
    data, mailboxes = setup
    config = _config(tmp_path, poison_threshold=10)  # a message in flight at several kills must not be poisoned
    sent: dict[str, list[str]] = {}
    acknowledged: set[str] = set()
    rng = random.Random()
    for round_ in range(ROUNDS):
        server = ServerProcess(data, store_url, config)
        clients = Clients(server.port, mailboxes, round_)
        time.sleep(rng.uniform(0.5, 2.5))
        server.kill()
        clients.join()
        sent.update(clients.sent)
        acknowledged |= clients.acknowledged
    assert len(acknowledged) > 0
    print(f"{ROUNDS} kills: {len(sent)} messages sent, {len(acknowledged)} acknowledged")
    server = ServerProcess(data, store_url, config)
    try:
        settle_queue(data, 60)
        assert _queue_count(data) == 0
    finally:
        server.stop()
    for mailbox in mailboxes:
        ids = _mailbox_ids(store, mailbox)
        assert len(ids) == len(set(ids)), f"duplicates in {mailbox.address}"
        expected = {m for m in acknowledged if mailbox.address in sent[m]}
        assert expected <= set(ids), f"acknowledged but lost for {mailbox.address}: {expected - set(ids)}"
        assert set(ids) <= {m for m, rcpts in sent.items() if mailbox.address in rcpts}, "a message never sent"


def test_acknowledged_but_undelivered_mail_is_delivered_after_a_kill(store, store_url, setup, tmp_path):
    data, mailboxes = setup
    config = _config(tmp_path)
    server = ServerProcess(data, store_url, config)
    ids = []
    with _store_write_lock(store_url):
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            for n in range(5):
                message_id, raw = _message([mailboxes[0].address], f"held{n}-{uuid.uuid4().hex[:6]}")
                assert client.sendmail("sender@elsewhere.example", [mailboxes[0].address], raw) == {}
                assert _queue_count(data, f"internet_id = '{message_id}'") == 1  # durable before the 250
                ids.append(message_id)
        _wait(lambda: _queue_count(data, "lease_until > 0") > 0, "delivery did not start")
        server.kill()
    assert _mailbox_ids(store, mailboxes[0]) == []
    server = ServerProcess(data, store_url, config)
    try:
        settle_queue(data, 60)
    finally:
        server.stop()
    assert sorted(_mailbox_ids(store, mailboxes[0])) == sorted(ids)


def test_a_message_killing_the_server_twice_goes_to_the_poison_queue(store, store_url, setup, tmp_path):
    data, mailboxes = setup
    config = _config(tmp_path, queue_scan_interval=1)
    mailroom = [sys.executable, "-m", "mailroom"]
    with _store_write_lock(store_url):
        server = ServerProcess(data, store_url, config)
        message_id, raw = _message([mailboxes[1].address], f"poison-{uuid.uuid4().hex[:6]}")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
            client.sendmail("sender@elsewhere.example", [mailboxes[1].address], raw)
        for crashes in (1, 2):
            _wait(lambda n=crashes: _queue_count(data, f"crash_count = {n}") == 1, f"crash count {crashes}")
            server.kill()
            server = ServerProcess(data, store_url, config)
        _wait(lambda: _queue_count(data, "poison = 1") == 1, "not moved to the poison queue")
    listed = subprocess.run([*mailroom, "queue", "list", "--data", str(data)], capture_output=True, text=True,
                            env=ENV, timeout=60)
    assert listed.returncode == 0, listed.stderr
    [poison_row] = [line for line in listed.stdout.splitlines() if "Poison" in line]
    assert "Suspended" in poison_row and " 1 " in poison_row
    assert _mailbox_ids(store, mailboxes[1]) == []  # not processed a third time
    with closing(sqlite3.connect(data / "queue" / "mail.que")) as conn:
        queued_id = conn.execute("SELECT id FROM messages").fetchone()[0]
    resumed = subprocess.run([*mailroom, "message", "resume", str(queued_id), "--data", str(data)],
                             capture_output=True, text=True, env=ENV, timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    try:
        _wait(lambda: _queue_count(data) == 0, "the resumed message was not delivered")
    finally:
        server.stop()
    assert _mailbox_ids(store, mailboxes[1]) == [message_id]
