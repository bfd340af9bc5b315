"""The submission listener (the port-587 role) with smtplib against the running server: STARTTLS,
then AUTH, then any recipient, as oneself only; and the RECEIVE records both listeners write."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import PASSWORD, RunningServer, new_mailbox
from .test_smtp_inbound import _inbox, _message


def _connect(url: str) -> smtplib.SMTP:
    host, port = url.removeprefix("smtp://").rsplit(":", 1)
    client = smtplib.SMTP(host, int(port), timeout=30)
    client.ehlo("client.example.org")
    return client


def _tls(tmp_path: Path) -> ssl.SSLContext:
    """Trusts the server's self-signed certificate (the one HTTPS uses)."""
    return ssl.create_default_context(cafile=tmp_path / "data" / "tls" / "cert.pem")


@pytest.fixture
def submit(server: RunningServer, tmp_path: Path) -> Iterator[smtplib.SMTP]:
    client = _connect(server.submission_url)
    client.starttls(context=_tls(tmp_path))
    client.ehlo("client.example.org")
    yield client
    client.close()


def _from(sender: Mailbox | str, to: str):
    msg = _message(to)
    msg.replace_header("From", sender if isinstance(sender, str) else f"{sender.display_name} <{sender.address}>")
    return msg


def test_auth_is_offered_only_after_starttls_and_required_before_mail(server, mailbox):
    client = _connect(server.submission_url)
    try:
        assert client.has_extn("starttls") and "auth" not in client.esmtp_features
        assert client.has_extn("dsn")
        assert client.docmd("AUTH", "PLAIN") == (538, b"5.7.11 Encryption required for requested authentication "
                                                      b"mechanism")
        assert client.docmd("MAIL", f"FROM:<{mailbox.address}>") == (530, b"5.7.0 Authentication required")
    finally:
        client.close()


def test_bad_credentials_are_535_and_nothing_is_accepted(server, tmp_path, mailbox, submit):
    assert submit.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        submit.login(mailbox.address, "wrong password")
    assert (refused.value.smtp_code, refused.value.smtp_error) == (535, b"5.7.8 Authentication credentials invalid")
    assert submit.docmd("MAIL", f"FROM:<{mailbox.address}>")[0] == 530


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_authenticated_submission_reaches_a_local_mailbox(server, server_store, mailbox, submit, mechanism):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    submit.user, submit.password = mailbox.address, PASSWORD
    assert submit.auth(mechanism, getattr(submit, f"auth_{mechanism.lower()}"))[0] == 235
    assert submit.mail(mailbox.address)[0] == 250
    assert submit.rcpt("someone@elsewhere.example") == (250, b"2.1.5 Recipient OK")  # any recipient, once authenticated
    assert submit.rcpt(bob.address)[0] == 250
    code, reply = submit.data(_from(mailbox, bob.address).as_bytes())
    assert code == 250 and b"Queued mail for delivery" in reply
    (raw,) = _inbox(server_store, bob)
    assert b"with ESMTPSA" in raw.split(b"\r\n\r\n", 1)[0]  # RFC 3848: TLS and AUTH


def test_an_alias_may_be_the_sender(server, server_store, mailbox, submit):
    domain = mailbox.address.split("@")[1]
    server_store.directory.add_alias(mailbox.address, f"sales@{domain}")
    bob = new_mailbox(server_store, domain, "bob")
    submit.login(f"SALES@{domain}", PASSWORD)  # log in with an alias, in another case
    submit.sendmail(f"sales@{domain}", [bob.address], _from(f"Sales <sales@{domain}>", bob.address).as_bytes())
    assert len(_inbox(server_store, bob)) == 1


def test_sending_as_someone_else_is_refused(server, server_store: Store, mailbox, submit):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    submit.login(mailbox.address, PASSWORD)
    assert submit.mail(bob.address) == (550, b"5.7.1 Client does not have permissions to send as this sender")
    submit.rset()
    submit.mail(mailbox.address)
    submit.rcpt(bob.address)
    code, reply = submit.data(_from(bob, bob.address).as_bytes())  # the envelope is ours, the From: is not
    assert (code, reply) == (550, b"5.7.1 Client does not have permissions to send as this sender")
    assert _inbox(server_store, bob) == []


def test_dsn_parameters_are_accepted_and_bad_ones_are_501(server, server_store, mailbox, submit):
    submit.login(mailbox.address, PASSWORD)
    assert submit.docmd("MAIL", f"FROM:<{mailbox.address}> RET=XYZ")[0] == 501
    assert submit.docmd("MAIL", f"FROM:<{mailbox.address}> RET=HDRS ENVID=QQ314159")[0] == 250
    assert submit.docmd("RCPT", f"TO:<{mailbox.address}> NOTIFY=NEVER,SUCCESS")[0] == 501
    orcpt = f"ORCPT=rfc822;{mailbox.address}"
    assert submit.docmd("RCPT", f"TO:<{mailbox.address}> NOTIFY=SUCCESS,FAILURE {orcpt}")[0] == 250
    assert submit.data(_from(mailbox, mailbox.address).as_bytes())[0] == 250
    message, report = sorted(_inbox(server_store, mailbox), key=lambda raw: b"Subject: Delivered:" in raw)
    assert b"Subject: Delivered: " in report and b"Original-Envelope-Id: QQ314159" in report  # NOTIFY=SUCCESS
    assert b"Subject: Delivered:" not in message


def test_both_listeners_record_receive_events(server, server_store, mailbox, submit, tmp_path):
    submit.login(mailbox.address, PASSWORD)
    submitted = _from(mailbox, mailbox.address)
    submitted.replace_header("Subject", "Through submission")
    submit.sendmail(mailbox.address, [mailbox.address], submitted.as_bytes())
    inbound = _connect(server.smtp_url)
    try:
        inbound.sendmail("sender@elsewhere.example", [mailbox.address], _message(mailbox.address).as_bytes())
    finally:
        inbound.close()
    log = MessageTrackingLog(tmp_path / "data" / "logs" / "MessageTracking")
    events = {e.connector_id: e for e in log.search(TrackingQuery(event_id="RECEIVE"))}
    assert set(events) == {"inbound", "submission"}
    sent = events["submission"]
    assert (sent.source, sent.sender_address, sent.return_path) == ("SMTP", mailbox.address, mailbox.address)
    assert sent.recipient_address == [mailbox.address] and sent.recipient_count == 1
    assert sent.message_subject == "Through submission" and sent.message_id == submitted["Message-ID"]
    assert sent.directionality == "Originating" and sent.client_ip == "127.0.0.1" and sent.internal_message_id
    assert sent.client_hostname == "client.example.org" and sent.server_ip == "127.0.0.1" and sent.total_bytes
    assert events["inbound"].directionality == "Incoming"
    assert events["inbound"].sender_address == "sender@elsewhere.example"
