"""Two mailroom servers routing mail to each other over SMTP on loopback, found through MX records
served by a loopback DNS server (tests/dns_server.py); on both store back ends.

Each server has its own data folder, its own store (database) and its own accepted domain. Their
inbound listeners share one port on two loopback addresses (A on 127.0.0.2, B on 127.0.0.3), so
``transport.remote_port`` is that one port for both, as port 25 is between real servers; each
domain's MX host resolves to its server's address."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from email.utils import make_msgid
from pathlib import Path

import psycopg
import pytest
from exchangelib import Mailbox as EwsMailbox
from exchangelib import Message
from exchangelib.settings import OofSettings

from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.transport.queue_admin import QueueAdmin
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import PASSWORD, PG_DSN, RunningServer, make_account, new_domain, new_mailbox, password_hash
from .dns_server import DNSServer
from .test_cli import mailroom, ok, table_rows
from .test_resource_booking import _answers, _at, _book, _bookings, _room_response
from .test_smtp_inbound import _inbox, _message

ADDRESSES = ("127.0.0.2", "127.0.0.3")


@dataclass
class Site:
    """One mailroom server with its store, accepted domain and inbound address."""

    name: str
    url: str
    data_dir: Path
    address: str
    settings: dict[str, object]
    server: RunningServer = field(init=False)
    store: Store = field(init=False)
    domain: str = field(init=False)

    def start(self) -> None:
        self.server = RunningServer(self.url, self.data_dir, **self.settings)

    def stop(self) -> None:
        self.server.stop()

    def tracking(self, message_id: str) -> list[str]:
        """The event ids this server logged for ``message_id``."""
        log = MessageTrackingLog(self.data_dir / "logs" / "MessageTracking")
        return [e.event_id for e in log.search(TrackingQuery(message_id=message_id))]


def _free_port() -> int:
    """A port free on both loopback addresses at once."""
    for _ in range(20):
        with closing(socket.socket()) as first, closing(socket.socket()) as second:
            first.bind((ADDRESSES[0], 0))
            port = first.getsockname()[1]
            try:
                second.bind((ADDRESSES[1], port))
            except OSError:
                continue
            return port
    raise OSError("no port free on both loopback addresses")


@pytest.fixture
def other_store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The second server's own database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'b.db'}"
        return
    if request.getfixturevalue("pg_url") is None:
        pytest.skip("PostgreSQL is not reachable (see the notice at the top of the run)")
    name = f"mailroom_test_b_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    yield (f"postgresql+psycopg://{params.get('user', 'postgres')}@{params.get('host', '127.0.0.1')}:"
           f"{params.get('port', 5432)}/{name}")
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sites(store_url: str, other_store_url: str, tmp_path: Path) -> Iterator[tuple[Site, Site]]:
    port = _free_port()
    with DNSServer() as dns:
        pair = []
        for name, url, address in (("a", store_url, ADDRESSES[0]), ("b", other_store_url, ADDRESSES[1])):
            settings = {"transport.inbound_listen": f"{address}:{port}", "transport.dns_servers": [dns.address],
                        "transport.smart_host": "", "transport.remote_port": port,
                        "transport.queue_scan_interval": 1, "transport.dns_timeout": 5}
            site = Site(name, url, tmp_path / name, address, settings)
            site.start()
            site.store = Store.open(url, pool_size=2)
            site.domain = new_domain(site.store)
            dns.add(site.domain, "MX", f"10 mx.{site.domain}.")
            dns.add(f"mx.{site.domain}", "A", address)
            pair.append(site)
        try:
            yield pair[0], pair[1]
        finally:
            for site in pair:
                site.store.close()
                site.stop()
                assert not site.server.bad_responses, "\n".join(site.server.bad_responses)


def _settle(*sites: Site) -> None:
    """Each server in turn has done what it holds (the sender's attempt first, then the receiver's)."""
    for site in sites:
        site.server.settle()


def _submission(site: Site, user: Mailbox) -> smtplib.SMTP:
    """An authenticated submission session on ``site`` (STARTTLS with its certificate, then AUTH)."""
    host, port = site.server.submission_url.removeprefix("smtp://").rsplit(":", 1)
    client = smtplib.SMTP(host, int(port), timeout=30)
    client.starttls(context=ssl.create_default_context(cafile=site.data_dir / "tls" / "cert.pem"))
    client.login(user.address, PASSWORD)
    return client


def _send_ews(site: Site, sender: Mailbox, to: str, subject: str) -> None:
    Message(account=make_account(site.server, sender.address), subject=subject, body="Across servers.",
            to_recipients=[EwsMailbox(email_address=to)]).send()


def test_mail_from_a_reaches_b_once_over_smtp_submission_and_from_ews(sites):
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice", "Alice")
    bob = new_mailbox(b.store, b.domain, "bob", "Bob")
    msg = _message(bob.address, subject="Submitted to A")
    msg.replace_header("From", alice.address)
    smtp_id = msg["Message-ID"]
    with closing(_submission(a, alice)) as client:
        assert client.sendmail(alice.address, [bob.address], msg.as_bytes()) == {}
    _send_ews(a, alice, bob.address, "Sent from EWS on A")
    _settle(a, b)

    items = {item.subject: item for item in make_account(b.server, bob.address).inbox.all()}
    assert sorted(items) == ["Sent from EWS on A", "Submitted to A"]  # each exactly once
    assert "Across servers." in items["Sent from EWS on A"].body
    for message_id in (smtp_id, items["Sent from EWS on A"].message_id):
        assert "SEND" in a.tracking(message_id)
        assert {"RECEIVE", "DELIVER"} <= set(b.tracking(message_id))
        assert "DELIVER" not in a.tracking(message_id)
    assert QueueAdmin(a.data_dir).messages() == []


def test_a_reply_from_b_reaches_a(sites):
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice")
    bob = new_mailbox(b.store, b.domain, "bob")
    _send_ews(b, bob, alice.address, "RE: hello")
    _settle(b, a)
    [item] = make_account(a.server, alice.address).inbox.all()
    assert item.subject == "RE: hello" and item.sender.email_address == bob.address


def test_an_unknown_user_at_b_gives_the_sender_on_a_a_non_delivery_report(sites):
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice")
    nobody = f"nobody@{b.domain}"
    _send_ews(a, alice, nobody, "To nobody")
    _settle(a, b, a)
    [report] = make_account(a.server, alice.address).inbox.all()
    assert report.subject == "Undeliverable: To nobody" and report.item_class == "REPORT.IPM.Note.NDR"
    assert nobody in report.body and "550 5.1.1 User unknown" in report.body
    assert QueueAdmin(a.data_dir).messages() == []
    received = MessageTrackingLog(b.data_dir / "logs" / "MessageTracking").search(TrackingQuery(event_id="RECEIVE"))
    assert received == []  # refused at RCPT: B took nothing


def test_while_b_is_down_a_keeps_the_message_and_delivers_it_when_the_queue_is_retried(sites):
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice")
    bob = new_mailbox(b.store, b.domain, "bob")
    b.stop()
    _send_ews(a, alice, bob.address, "While B was down")
    a.server.settle()

    rows = table_rows(ok(mailroom("queue", "list", data=a.data_dir)))
    start = next(i for i, row in enumerate(rows) if row[0] == b.domain)
    assert rows[start][1:4] == ["DnsConnectorDelivery", "Retry", "1"]
    last_error = " ".join(row[5] for row in rows[start:] if row[5])
    assert "4.4.1" in last_error and f"{b.address}" in last_error
    [info] = QueueAdmin(a.data_dir).messages(b.domain)
    assert info.status == "Retry" and info.recipients[0].attempts == 1

    b.start()
    assert "1 message(s)" in ok(mailroom("queue", "retry", b.domain, data=a.data_dir))
    deadline = time.monotonic() + 30
    while QueueAdmin(a.data_dir).messages() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert QueueAdmin(a.data_dir).messages() == []
    b.server.settle()
    [raw] = _inbox(b.store, bob)
    assert b"Subject: While B was down" in raw


def test_a_dsn_from_a_is_accepted_by_b_from_the_null_sender(sites):
    """bob on B asks for a success notification; A delivers and sends the DSN from <> to B."""
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice")
    bob = new_mailbox(b.store, b.domain, "bob")
    msg = _message(alice.address, subject="Tell me when it arrives", message_id=make_msgid(domain=b.domain))
    msg.replace_header("From", bob.address)
    with closing(_submission(b, bob)) as client:
        assert client.sendmail(bob.address, [alice.address], msg.as_bytes(), rcpt_options=["NOTIFY=SUCCESS"]) == {}
    _settle(b, a, b)
    assert len(_inbox(a.store, alice)) == 1
    # A's "Delivered" report, and none from B: A offers DSN, so B passed NOTIFY on rather than saying "Relayed"
    [report] = make_account(b.server, bob.address).inbox.all()
    assert (report.subject, report.item_class) == ("Delivered: Tell me when it arrives", "REPORT.IPM.Note.DR")
    received = MessageTrackingLog(b.data_dir / "logs" / "MessageTracking").search(TrackingQuery(event_id="RECEIVE"))
    assert [(e.return_path, e.connector_id) for e in received if e.message_id != msg["Message-ID"]] == [
        ("<>", "inbound")]


def test_an_automatic_reply_from_b_reaches_the_sender_on_a_from_the_null_sender(sites):
    """bob on B is away (ExternalAudience All): alice on A gets B's external reply, sent by B's
    transport from <> (RFC 3834), once however often she writes."""
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice")
    bob = new_mailbox(b.store, b.domain, "bob", "Bob")
    make_account(b.server, bob.address).oof_settings = OofSettings(
        state=OofSettings.ENABLED, external_audience="All", internal_reply="In the building", external_reply="Away")
    _send_ews(a, alice, bob.address, "Are you there?")
    _send_ews(a, alice, bob.address, "Still there?")
    _settle(a, b, a)

    [reply] = make_account(a.server, alice.address).inbox.all()
    assert reply.subject == "Automatic reply: Are you there?" and reply.author.email_address == bob.address
    assert "Away" in reply.text_body and "In the building" not in reply.text_body
    assert {"SUBMIT", "SEND"} <= set(b.tracking(reply.message_id))
    [received] = MessageTrackingLog(a.data_dir / "logs" / "MessageTracking").search(
        TrackingQuery(event_id="RECEIVE", message_id=reply.message_id))
    assert received.return_path == "<>"
    assert QueueAdmin(b.data_dir).messages() == []


def test_a_room_on_b_answers_an_organizer_on_a(sites):
    """A room declines an organizer from another organization (ProcessExternalMeetingMessages is
    off by default, as on Exchange), and accepts once it is allowed; the answers travel back over
    SMTP and are recorded on the organizer's meeting."""
    a, b = sites
    alice = new_mailbox(a.store, a.domain, "alice", "Alice")
    room = b.store.directory.add_mailbox(f"board@{b.domain}", password_hash(), "Boardroom", kind="room")
    organizer = make_account(a.server, alice.address)

    refused = _book(organizer, room, _at(7, 10), subject="Outside")
    _settle(a, b, a)
    assert _room_response(organizer, refused) == "Decline"
    [answer] = _answers(organizer, "Outside")
    assert answer.subject == "Declined: Outside" and "from outside the organization" in answer.text_body
    assert _bookings(b.server, room) == []

    b.store.calendar_processing.set(room.address, {"ProcessExternalMeetingMessages": True})
    booked = _book(organizer, room, _at(7, 14), subject="Allowed")
    _settle(a, b, a)
    assert _room_response(organizer, booked) == "Accept"
    assert [m.subject for m in _answers(organizer, "Allowed")] == ["Accepted: Allowed"]
    assert [item.start for item in _bookings(b.server, room)] == [_at(7, 14)]
