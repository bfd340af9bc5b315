"""Transport agents in the running server: the two shipped agents and test agents (classes here,
loaded by ``module:Class``) on mail received over SMTP and sent from EWS, on both back ends."""

from __future__ import annotations

import email
import email.policy
import re
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest
from exchangelib import Mailbox as EwsMailbox
from exchangelib import Message

from mailroom.store import Store
from mailroom.transport.agents import MailItem, Quarantine, Reject, SessionInfo, TransportAgent
from mailroom.transport.envelope import Recipient
from mailroom.transport.queue_admin import QueueAdmin
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import RunningServer, make_account, new_domain, new_mailbox
from .test_cli import mailroom, ok, table_rows
from .test_smtp_inbound import _inbox, _message

DISCLAIMER = "Mailroom test disclaimer."
REFUSE_CONNECTIONS = threading.Event()


def _subject(item: MailItem) -> str:
    return str(item.message["Subject"] or "")


class Gate(TransportAgent):
    """Refuses at each receive event, on cue."""

    name: ClassVar[str] = "gate"

    def on_connect(self, session: SessionInfo) -> None:
        if REFUSE_CONNECTIONS.is_set():
            raise Reject("554 5.7.1 Connection refused by policy")

    def on_mail_from(self, session: SessionInfo, address: str) -> None:
        if address.startswith("blocked@"):
            raise Reject("550 5.7.1 Sender blocked by policy")

    def on_rcpt_to(self, session: SessionInfo, address: str) -> None:
        if address.startswith("private@"):
            raise Reject("550 5.7.1 Recipient refused by policy")

    def on_end_of_data(self, session: SessionInfo, item: MailItem) -> None:
        if _subject(item) == "refuse me":
            raise Reject("550 5.7.1 Content refused by policy")


class Redirect(TransportAgent):
    """carol's mail goes to dave (in the same domain)."""

    name: ClassVar[str] = "redirect"

    def on_submitted(self, item: MailItem) -> None:
        for recipient in list(item.recipients):
            local, _, domain = recipient.address.partition("@")
            if local == "carol":
                item.redirect(recipient.address, f"dave@{domain}")


class Hold(TransportAgent):
    name: ClassVar[str] = "hold"

    def on_submitted(self, item: MailItem) -> None:
        if _subject(item) == "hold me":
            raise Quarantine("looks suspicious")


class Crash(TransportAgent):
    """Fails half-way through a change: the change is undone, the message goes on."""

    name: ClassVar[str] = "crash"
    priority: ClassVar[int] = 50

    def on_submitted(self, item: MailItem) -> None:
        if _subject(item) == "crash":
            item.message["X-Half-Done"] = "yes"
            raise RuntimeError("agent bug")


class Late(TransportAgent):
    """Stamps every routed message; tries (and may not) change recipients after they are stored;
    refuses delivery to nodeliver@."""

    name: ClassVar[str] = "late"

    def on_routed(self, item: MailItem) -> None:
        item.message["X-Routed"] = item.internal_id
        if _subject(item) == "late redirect":
            item.redirect(item.recipients[0].address, "someone@else.example")

    def on_deliver(self, item: MailItem, recipient: Recipient) -> None:
        if recipient.address.startswith("nodeliver@"):
            raise Reject("550 5.7.1 Delivery refused by policy")


AGENTS = ["header-stamp", "disclaimer", *(f"{__name__}:{cls.__name__}" for cls in (Gate, Redirect, Hold, Crash, Late))]


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    settings = {"header-stamp": {"headers": {"X-Scanned": "mailroom {internal_id}"}},
                "disclaimer": {"text": DISCLAIMER}}
    running = RunningServer(store_url, tmp_path / "data", agent_settings=settings,
                            **{"agents.enabled": AGENTS, "transport.queue_scan_interval": 1})
    yield running
    running.stop()
    assert not running.bad_responses, "\n".join(running.bad_responses)


@pytest.fixture
def domain(server_store: Store) -> str:
    return new_domain(server_store)


def _smtp(url: str) -> smtplib.SMTP:
    host, port = url.removeprefix("smtp://").rsplit(":", 1)
    client = smtplib.SMTP(host, int(port), timeout=30)
    client.ehlo("client.example.org")
    return client


def _send(server: RunningServer, msg: EmailMessage, sender: str, rcpts: list[str]) -> str:
    """Send over the inbound listener; the internal id from the 250 reply."""
    client = _smtp(server.smtp_url)
    try:
        assert client.mail(sender)[0] == 250
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(msg.as_bytes())
    finally:
        client.close()
    assert code == 250, reply
    return re.search(rb"InternalId=(\d+)", reply).group(1).decode()  # type: ignore[union-attr]


def _parsed(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _tracking(server: RunningServer, event_id: str) -> list:
    return MessageTrackingLog(server.config.data_dir / "logs" / "MessageTracking").search(
        TrackingQuery(event_id=event_id))


def test_smtp_mail_gets_the_footer_a_stamped_header_and_the_routing_stamp(server, server_store, domain):
    bob = new_mailbox(server_store, domain, "bob")
    msg = _message(bob.address)
    msg["X-Scanned"] = "forged: clean"
    internal_id = _send(server, msg, "sender@elsewhere.example", [bob.address])
    [raw] = _inbox(server_store, bob)
    delivered = _parsed(raw)
    assert delivered.get_all("X-Scanned") == [f"mailroom {internal_id}"]
    assert delivered["X-Routed"] == internal_id  # on_routed's content change is what was delivered
    body = delivered.get_body(("plain",))
    assert body is not None and body.get_content().count(DISCLAIMER) == 1
    assert "Plain text body." in body.get_content()


def test_mail_sent_from_ews_gets_the_footer(server, server_store, domain):
    alice = new_mailbox(server_store, domain, "alice")
    bob = new_mailbox(server_store, domain, "bob")
    Message(account=make_account(server, alice.address), subject="From EWS", body="Sent with EWS.",
            to_recipients=[EwsMailbox(email_address=bob.address)]).send()
    server.settle()
    [item] = make_account(server, bob.address).inbox.all()
    assert item.subject == "From EWS"
    assert "Sent with EWS." in item.body and item.body.count(DISCLAIMER) == 1


def test_receive_agents_refuse_at_connect_mail_from_rcpt_to_and_end_of_data(server, server_store, domain):
    bob = new_mailbox(server_store, domain, "bob")
    private = new_mailbox(server_store, domain, "private")
    REFUSE_CONNECTIONS.set()
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            _smtp(server.smtp_url)
        assert (refused.value.smtp_code, refused.value.smtp_error) == (554, b"5.7.1 Connection refused by policy")
    finally:
        REFUSE_CONNECTIONS.clear()
    client = _smtp(server.smtp_url)
    try:
        assert client.mail(f"blocked@{domain}") == (550, b"5.7.1 Sender blocked by policy")
        assert client.mail("sender@elsewhere.example")[0] == 250
        assert client.rcpt(private.address) == (550, b"5.7.1 Recipient refused by policy")
        assert client.rcpt(bob.address)[0] == 250
        assert client.data(_message(bob.address, subject="refuse me").as_bytes()) == (
            550, b"5.7.1 Content refused by policy")
    finally:
        client.close()
    assert _inbox(server_store, bob) == [] and _inbox(server_store, private) == []
    assert QueueAdmin(server.config.data_dir).messages() == []


def test_an_agent_redirects_a_recipient(server, server_store, domain):
    carol = new_mailbox(server_store, domain, "carol")
    dave = new_mailbox(server_store, domain, "dave")
    _send(server, _message(carol.address, subject="for carol"), "sender@elsewhere.example", [carol.address])
    assert _inbox(server_store, carol) == []
    [raw] = _inbox(server_store, dave)
    assert _parsed(raw)["Subject"] == "for carol"


def test_a_quarantined_message_waits_suspended_until_resumed(server, server_store, domain):
    bob = new_mailbox(server_store, domain, "bob")
    internal_id = _send(server, _message(bob.address, subject="hold me"), "sender@elsewhere.example", [bob.address])
    server.settle()
    assert _inbox(server_store, bob) == []
    data = server.config.data_dir
    [info] = QueueAdmin(data).messages()
    assert (str(info.message.id), info.status) == (internal_id, "Suspended")
    assert info.message.last_error == "Quarantined by transport agent hold: looks suspicious"
    rows = table_rows(ok(mailroom("queue", "messages", data=data)))  # wrapped cells continue on the next rows
    assert rows[0][:3] == [internal_id, "Submission", "Suspended"]
    assert " ".join(row[8] for row in rows if row[8]) == "Quarantined by transport agent hold: looks suspicious"
    [held] = _tracking(server, "AGENTINFO")
    assert held.internal_message_id == internal_id and "looks suspicious" in held.message_info

    ok(mailroom("message", "resume", internal_id, data=data))
    server.settle()
    [raw] = _inbox(server_store, bob)
    assert _parsed(raw)["Subject"] == "hold me"
    assert QueueAdmin(data).messages() == []


def test_a_quarantined_message_can_be_removed(server, server_store, domain):
    bob = new_mailbox(server_store, domain, "bob")
    internal_id = _send(server, _message(bob.address, subject="hold me"), "sender@elsewhere.example", [bob.address])
    ok(mailroom("message", "remove", internal_id, "--no-ndr", data=server.config.data_dir))
    assert QueueAdmin(server.config.data_dir).messages() == []
    assert _inbox(server_store, bob) == []


def test_a_failing_agent_is_skipped_with_its_changes_undone(server, server_store, domain):
    bob = new_mailbox(server_store, domain, "bob")
    internal_id = _send(server, _message(bob.address, subject="crash"), "sender@elsewhere.example", [bob.address])
    [raw] = _inbox(server_store, bob)
    delivered = _parsed(raw)
    assert delivered["X-Half-Done"] is None
    assert DISCLAIMER in delivered.get_body(("plain",)).get_content()  # the other agents ran
    [failure] = _tracking(server, "AGENTINFO")
    assert failure.internal_message_id == internal_id and failure.source == "AGENT"
    assert failure.message_info == "crash failed in on_submitted: RuntimeError: agent bug"
    assert failure.recipient_address == [bob.address]


def test_recipients_cannot_change_after_the_message_is_stored(server, server_store, domain):
    bob = new_mailbox(server_store, domain, "bob")
    _send(server, _message(bob.address, subject="late redirect"), "sender@elsewhere.example", [bob.address])
    [raw] = _inbox(server_store, bob)
    assert _parsed(raw)["X-Routed"] is None  # the agent's other change went with it
    [failure] = _tracking(server, "AGENTINFO")
    assert failure.message_info.startswith("late failed in on_routed: AgentError: recipients cannot change in "
                                           "on_routed")


def test_a_delivery_agent_refuses_one_recipient_and_the_sender_gets_a_report(server, server_store, domain):
    alice = new_mailbox(server_store, domain, "alice")
    bob = new_mailbox(server_store, domain, "bob")
    blocked = new_mailbox(server_store, domain, "nodeliver")
    _send(server, _message(bob.address, subject="two recipients"), alice.address, [bob.address, blocked.address])
    assert len(_inbox(server_store, bob)) == 1
    assert _inbox(server_store, blocked) == []
    [report] = _inbox(server_store, alice)
    assert "Delivery refused by policy" in report.decode()
    [fail] = _tracking(server, "FAIL")
    assert fail.recipient_address == [blocked.address] and "5.7.1" in fail.recipient_status[0]


def test_an_unknown_agent_stops_start_up_with_a_clear_error(tmp_path):
    config = tmp_path / "mailroom.toml"
    config.write_text('[ews]\nhttp_listen = "127.0.0.1:0"\nhttps_listen = "127.0.0.1:0"\n'
                      '[transport]\ninbound_listen = "127.0.0.1:0"\nsubmission_listen = "127.0.0.1:0"\n'
                      '[metrics]\nlisten = ""\n[agents]\nenabled = ["no-such-agent"]\n')
    result = mailroom("serve", "--config", str(config), data=tmp_path / "data")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    error = " ".join(result.stderr.split())  # rich wraps the error line
    assert "mailroom.toml: agents.enabled: no transport agent named 'no-such-agent' (installed: disclaimer, " \
           "header-stamp)" in error
    assert "mailroom ready" not in result.stdout
