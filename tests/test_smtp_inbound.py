"""The inbound SMTP listener, spoken to with the standard library's smtplib, on both back ends."""

from __future__ import annotations

import email.policy
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.store.query import Page

from .conftest import RunningServer, new_mailbox, settle_all

MAX_RECIPIENTS = 3
MAX_BYTES = 20_000


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """The real server with small transport limits, so the limit tests stay fast."""
    running = RunningServer(store_url, tmp_path / "data", **{"transport.max_recipients": MAX_RECIPIENTS,
                                                             "transport.max_message_bytes": MAX_BYTES})
    yield running
    running.stop()
    assert not running.bad_responses, "\n".join(running.bad_responses)


@pytest.fixture
def smtp(server: RunningServer) -> Iterator[smtplib.SMTP]:
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    client = smtplib.SMTP(host, int(port), timeout=30)
    client.ehlo("client.example.org")
    yield client
    client.close()


def _message(to: str, subject: str = "Hello over SMTP", body: str = "Plain text body.\n",
             message_id: str | None = None) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)  # CRLF line ends, as on the wire
    msg["From"] = "Sender <sender@elsewhere.example>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id or make_msgid(domain="elsewhere.example")
    msg.set_content(body)
    return msg


def _inbox(store: Store, mailbox: Mailbox) -> list[bytes]:
    """The MIME content of every item in the mailbox's Inbox, once the transport has delivered
    what it holds."""
    settle_all()
    inbox = store.folders.distinguished(mailbox, "inbox")
    items, _ = store.items.find(mailbox, inbox.id, page=Page(0, 100))
    return [store.items.mime(mailbox, item.id) or b"" for item in items]


def test_ehlo_lists_the_extensions(server, smtp):
    code, _ = smtp.ehlo("client.example.org")
    assert code == 250
    for extension in ("size", "8bitmime", "pipelining", "enhancedstatuscodes", "smtputf8"):
        assert smtp.has_extn(extension), extension
    assert smtp.esmtp_features["size"] == str(MAX_BYTES)
    assert "auth" not in smtp.esmtp_features  # the inbound role takes no AUTH
    assert smtp.noop() == (250, b"2.0.0 OK")  # every reply carries an enhanced status code


def test_a_message_arrives_in_the_inbox_with_a_received_header(server, server_store, mailbox, account, smtp):
    msg = _message(mailbox.address, body="Delivered by SMTP.\n")
    smtp.mail("sender@elsewhere.example")
    assert smtp.rcpt(mailbox.address.upper()) == (250, b"2.1.5 Recipient OK")  # addresses are case-insensitive
    code, reply = smtp.data(msg.as_bytes())
    assert code == 250
    assert reply.decode().startswith(f"2.6.0 {msg['Message-ID']} ")
    server.settle()
    (item,) = account.inbox.all()
    assert item.subject == "Hello over SMTP"
    assert item.body.strip() == "Delivered by SMTP."
    assert item.message_id == msg["Message-ID"]
    assert not item.is_read
    (raw,) = _inbox(server_store, mailbox)
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return_path, received = head.split("\r\n", 1)
    assert return_path == "Return-Path: <sender@elsewhere.example>"  # final delivery's (RFC 5321 section 4.4)
    assert received.startswith("Received: from client.example.org ([127.0.0.1])")
    assert "with ESMTP" in received and f"for <{mailbox.address.upper()}>" in received


def test_final_delivery_records_the_envelope_sender_in_place_of_a_return_path_that_came(server, server_store,
                                                                                        mailbox, account, smtp):
    msg = _message(mailbox.address, subject="Forged path")
    msg["Return-Path"] = "<forged@elsewhere.example>"
    smtp.sendmail("real@elsewhere.example", [mailbox.address], msg.as_bytes())
    bounce = _message(mailbox.address, subject="From the null sender")
    smtp.sendmail("<>", [mailbox.address], bounce.as_bytes())
    server.settle()
    heads = sorted(raw.split(b"\r\n\r\n", 1)[0].decode() for raw in _inbox(server_store, mailbox))
    assert [h.count("Return-Path:") for h in heads] == [1, 1]
    assert sorted(h.split("\r\n", 1)[0] for h in heads) == ["Return-Path: <>", "Return-Path: <real@elsewhere.example>"]
    assert not any("forged" in h for h in heads)
    [forged] = account.inbox.filter(subject="Forged path")
    headers = {h.name: h.value for h in forged.headers}
    assert headers["Return-Path"] == "<real@elsewhere.example>"


def test_an_alias_delivers_to_its_mailbox(server, server_store, mailbox, smtp):
    domain = mailbox.address.split("@")[1]
    server_store.directory.add_alias(mailbox.address, f"sales@{domain}")
    smtp.sendmail("sender@elsewhere.example", [f"sales@{domain}"], _message(f"sales@{domain}").as_bytes())
    server.settle()
    assert len(_inbox(server_store, mailbox)) == 1


def test_several_recipients_and_a_message_without_message_id(server, server_store, mailbox, smtp):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    msg = _message(mailbox.address)
    del msg["Message-ID"]
    smtp.mail("sender@elsewhere.example")
    smtp.rcpt(mailbox.address)
    smtp.rcpt(bob.address)
    code, reply = smtp.data(msg.as_bytes())
    assert code == 250 and b"<" in reply  # the Message-ID the server gave it
    server.settle()
    (alice_raw,) = _inbox(server_store, mailbox)
    (bob_raw,) = _inbox(server_store, bob)
    assert alice_raw == bob_raw and b"\r\nMessage-ID: <" in alice_raw
    assert b"\tfor <" not in alice_raw  # recipients are not disclosed in the trace of a shared copy


def test_unknown_user_is_refused_at_rcpt_and_nothing_is_stored(server, server_store, mailbox, smtp):
    domain = mailbox.address.split("@")[1]
    smtp.mail("sender@elsewhere.example")
    assert smtp.rcpt(f"nobody@{domain}") == (550, b"5.1.1 User unknown")
    smtp.rset()
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        smtp.sendmail("sender@elsewhere.example", [f"nobody@{domain}"], _message(f"nobody@{domain}").as_bytes())
    assert refused.value.recipients[f"nobody@{domain}"][0] == 550
    assert _inbox(server_store, mailbox) == []


def test_relay_to_another_domain_is_refused(server, server_store, mailbox, smtp):
    smtp.mail("sender@elsewhere.example")
    assert smtp.rcpt("someone@not-ours.example") == (550, b"5.7.1 Unable to relay")
    assert smtp.rcpt(mailbox.address)[0] == 250  # the session goes on
    assert smtp.data(_message(mailbox.address).as_bytes())[0] == 250
    server.settle()
    assert len(_inbox(server_store, mailbox)) == 1


def test_too_many_recipients(server, server_store, mailbox, smtp):
    domain = mailbox.address.split("@")[1]
    others = [new_mailbox(server_store, domain, f"user{n}") for n in range(MAX_RECIPIENTS)]
    smtp.mail("sender@elsewhere.example")
    for box in others:
        assert smtp.rcpt(box.address)[0] == 250
    assert smtp.rcpt(mailbox.address) == (452, b"4.5.3 Too many recipients")
    assert smtp.data(_message(others[0].address).as_bytes())[0] == 250  # the accepted ones get it
    server.settle()
    assert _inbox(server_store, mailbox) == []
    assert all(len(_inbox(server_store, box)) == 1 for box in others)


def test_oversize_message_is_refused_and_nothing_is_stored(server, server_store, mailbox, smtp):
    big = _message(mailbox.address, body="x" * 70 + "\n").as_bytes() + b"y" * 70 * (MAX_BYTES // 70 + 1)
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # announced with SIZE: refused at MAIL FROM
        smtp.sendmail("sender@elsewhere.example", [mailbox.address], big)
    assert refused.value.smtp_code == 552 and refused.value.smtp_error.startswith(b"5.3.4")
    smtp.rset()
    smtp.mail("sender@elsewhere.example")  # not announced: refused after DATA
    smtp.rcpt(mailbox.address)
    big = _message(mailbox.address, body=("x" * 70 + "\n") * (MAX_BYTES // 70 + 1)).as_bytes()
    code, reply = smtp.data(big)
    assert (code, reply[:5]) == (552, b"5.3.4"), reply
    server.settle()
    assert _inbox(server_store, mailbox) == []


def test_bad_syntax_is_501(server, smtp):
    assert smtp.docmd("MAIL", "FROM:<>>")[0] == 501
    assert smtp.docmd("MAIL", "FROM:")[0] == 501
    assert smtp.docmd("EHLO")[0] == 501
    assert smtp.docmd("RCPT", "TO:<a@example.org>") == (503, b"5.5.1 Error: need MAIL command")  # bad sequence


def test_the_same_message_sent_twice_is_stored_once(server, server_store, mailbox, smtp):
    msg = _message(mailbox.address).as_bytes()
    for _ in range(2):
        smtp.mail("sender@elsewhere.example")
        smtp.rcpt(mailbox.address)
        assert smtp.data(msg)[0] == 250  # the retry is acknowledged, not refused
    server.settle()
    assert len(_inbox(server_store, mailbox)) == 1


def test_pipelined_commands_and_a_null_sender(server, server_store, mailbox, smtp):
    smtp.send(f"MAIL FROM:<>\r\nRCPT TO:<{mailbox.address}>\r\nDATA\r\n".encode())
    assert [smtp.getreply()[0] for _ in range(3)] == [250, 250, 354]
    smtp.send(_message(mailbox.address).as_bytes() + b".\r\n")
    assert smtp.getreply()[0] == 250
    server.settle()
    assert len(_inbox(server_store, mailbox)) == 1
