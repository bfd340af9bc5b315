"""Shared fixtures: a store on each back end, the real server on loopback, exchangelib accounts.

Every EWS response a test produces is checked against the official schema; a test that made
the server send an invalid response fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest
import requests
from argon2 import PasswordHasher, profiles
from exchangelib import DELEGATE, IMPERSONATION, Account, Configuration, Credentials
from exchangelib.protocol import BaseProtocol
from exchangelib.transport import BASIC
from prometheus_client.parser import text_string_to_metric_families

from mailroom.server import config as configuration
from mailroom.server.app import serve
from mailroom.store import Store
from mailroom.store.model import Mailbox

from .schema_check import problems

PG_DSN = os.environ.get("MAILROOM_TEST_PG", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PASSWORD = "correct horse battery staple"
# Test mailboxes get argon2id hashes at argon2's cheapest parameters: verification reads the
# parameters from the hash, so a test login costs microseconds instead of half a second of CPU.
# The production parameters stay covered where the CLI hashes (test_cli).
_TEST_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def pytest_report_header() -> str | None:
    """The notice that PostgreSQL tests are skipped, in the header: the controller prints it,
    where a fixture's print in an xdist worker would not be seen."""
    if _pg_available():
        return None
    return f"*** PostgreSQL is not reachable at {PG_DSN} - PostgreSQL back-end tests are SKIPPED ***"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test run (for each xdist worker), dropped at the end;
    None when no PostgreSQL is reachable (the run's header says so)."""
    if not _pg_available():
        yield None
        return
    name = f"mailroom_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    yield f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:" \
          f"{params.get('port', 5432)}/{name}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store brought to the newest schema once per run: each test's store is a copy, so
    the Alembic migrations (test_migrations runs them) are not run again for every test."""
    path = tmp_path_factory.mktemp("template") / "mailroom.db"
    Store.open(f"sqlite:///{path}", pool_size=1).close()
    return path


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        path = tmp_path / "mailroom.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_url")
    if url is None:
        pytest.skip("PostgreSQL is not reachable (see the notice at the top of the run)")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store.open(store_url, pool_size=4)
    yield store
    store.close()


def new_domain(store: Store) -> str:
    domain = f"d{uuid.uuid4().hex[:10]}.example"
    store.directory.add_domain(domain)
    return domain


def password_hash() -> str:
    """An argon2id hash of ``PASSWORD`` for a test mailbox (cheap parameters, see _TEST_HASHER)."""
    return _TEST_HASHER.hash(PASSWORD)


def new_mailbox(store: Store, domain: str, local: str = "user", name: str | None = None) -> Mailbox:
    return store.directory.add_mailbox(f"{local}@{domain}", password_hash(), name)


def settle_queue(data_dir: Path, timeout: float = 30) -> None:
    """Wait until the queue in ``data_dir`` has no recipient in its first attempt and nothing in flight."""
    path = data_dir / "queue" / "mail.que"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            busy = conn.execute("SELECT (SELECT count(*) FROM recipients r JOIN messages m ON m.id = r.message_id"
                                " WHERE r.status = 'ready' AND m.status = 'Active' AND m.poison = 0)"
                                " + (SELECT count(*) FROM messages WHERE lease_until > 0)").fetchone()[0]
        if not busy:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the queue in {data_dir} did not settle in {timeout} s")


def settle_all(timeout: float = 30) -> None:
    """``settle`` every server running in this process (for helpers that do not hold the server)."""
    for running in list(RunningServer.live):
        running.settle(timeout)


class RunningServer:
    """The real server, on loopback ports chosen by the OS, in a thread of this process."""

    live: ClassVar[set[RunningServer]] = set()

    def __init__(self, store_url: str, data_dir: Path, agent_settings: dict[str, dict] | None = None,
                 **settings: object) -> None:
        self.config = configuration.load(None, {"data_dir": str(data_dir), "database_url": store_url,
                                                 "ews.http_listen": "127.0.0.1:0", "ews.https_listen": "127.0.0.1:0",
                                                 "ews.workers": 4, "transport.inbound_listen": "127.0.0.1:0",
                                                 "transport.submission_listen": "127.0.0.1:0",
                                                 "metrics.listen": "127.0.0.1:0",
                                                 # remote mail never leaves loopback: nothing listens there,
                                                 # so it waits for a retry (tests that route set their own)
                                                 "transport.smart_host": "127.0.0.1:9",
                                                 **settings})
        self.config.agent_settings.update(agent_settings or {})  # the [agents.NAME] tables
        self.urls: list[str] = []
        self.bad_responses: list[str] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(120):
            raise RuntimeError("server did not start")

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await serve(self.config, stop=self._stop, ready=self._on_ready, on_response=self._check)
        asyncio.run(main())

    def _on_ready(self, urls: list[str]) -> None:
        self.urls = urls
        RunningServer.live.add(self)
        self._ready.set()

    def _check(self, _request: bytes, _status: int, payload: bytes) -> None:
        for problem in problems(payload):
            self.bad_responses.append(problem)

    @property
    def ews_url(self) -> str:
        return self.urls[0]

    @property
    def https_url(self) -> str:
        return self.urls[1]

    @property
    def smtp_url(self) -> str:
        """``smtp://HOST:PORT`` of the inbound SMTP listener."""
        return next(url for url in self.urls if url.startswith("smtp://"))

    @property
    def submission_url(self) -> str:
        """``smtp://HOST:PORT`` of the submission listener (listed after the inbound one)."""
        return [url for url in self.urls if url.startswith("smtp://")][-1]

    @property
    def metrics_url(self) -> str:
        return next(url for url in self.urls if url.endswith("/metrics"))
    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The /metrics page's samples: (name, sorted labels) to value."""
        text = requests.get(self.metrics_url, timeout=30).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def settle(self, timeout: float = 30) -> None:
        """Wait (bounded) until the transport has processed everything queued: no recipient is
        waiting for its first attempt, no message is in flight (retries may stay), and the last
        pass has written its tracking records (they follow its commit)."""
        settle_queue(self.config.data_dir, timeout)
        deadline = time.monotonic() + timeout
        while self.metrics()[("mailroom_messages_processing", ())] != 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the transport of {self.config.data_dir} was still processing after {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        RunningServer.live.discard(self)
        self._thread.join(30)


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(store_url, tmp_path / "data")
    yield running
    running.stop()
    assert not running.bad_responses, "responses that fail the EWS schema:\n" + "\n".join(running.bad_responses)


@pytest.fixture
def server_store(server: RunningServer, store_url: str) -> Iterator[Store]:
    """A second handle on the running server's store, for setup and for checking stored state."""
    store = Store.open(store_url, pool_size=2)
    yield store
    store.close()


def make_account(server: RunningServer, address: str, password: str = PASSWORD,
                 impersonator: str | None = None) -> Account:
    """``address``'s account; with ``impersonator``, that service account logs in and impersonates it."""
    BaseProtocol.HTTP_ADAPTER_CLS = requests.adapters.HTTPAdapter
    config = Configuration(service_endpoint=server.ews_url, credentials=Credentials(impersonator or address, password),
                           auth_type=BASIC)
    return Account(address, config=config, autodiscover=False, access_type=IMPERSONATION if impersonator else DELEGATE)


@pytest.fixture
def mailbox(server_store: Store) -> Mailbox:
    domain = new_domain(server_store)
    return new_mailbox(server_store, domain, "alice", "Alice Example")


@pytest.fixture
def account(server: RunningServer, mailbox: Mailbox) -> Account:
    return make_account(server, mailbox.address)
