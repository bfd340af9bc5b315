"""Public distribution groups in the transport, on both back ends: a message to a group reaches
each member once (nested groups expanded, loops cut, members that are recipients already left
out), the tracking log shows EXPAND and DUPLICATEEXPAND, and inbound SMTP takes a group's address
at RCPT."""

from __future__ import annotations

import email.policy
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

from exchangelib import Mailbox, Message

from mailroom.store.query import Page
from mailroom.transport import queue
from mailroom.transport.categorizer import expand, record_expansion
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import make_account, new_domain, new_mailbox, settle_all


def _subjects(store, mailbox) -> list[str]:
    settle_all()
    inbox = store.folders.distinguished(mailbox, "inbox")
    items, _ = store.items.find(mailbox, inbox.id, page=Page(0, 100))
    return [item.props.get("Subject") for item in items]


def _send(server, recipients: list[str], subject: str) -> None:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "sender@elsewhere.example"
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="elsewhere.example")
    msg.set_content("To the whole team.\n")
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        refused = client.send_message(msg, "sender@elsewhere.example", recipients)
    assert refused == {}


def test_a_message_to_a_group_reaches_every_member_once(server, server_store):
    token = uuid.uuid4().hex[:8]
    domain = new_domain(server_store)
    ann, bob, cat = (new_mailbox(server_store, domain, f"{name}{token}") for name in ("ann", "bob", "cat"))
    groups = server_store.groups
    team = groups.add(f"team{token}@{domain}", "Team")
    leads = groups.add(f"leads{token}@{domain}", "Leads")
    for group, member in ((team, ann), (team, leads), (leads, bob), (leads, ann)):
        groups.add_member(group.address, member.address)
    groups.add_member(leads.address, team.address)  # a loop
    subject = f"Group mail {token}"
    _send(server, [team.address, cat.address], subject)
    for mailbox in (ann, bob, cat):
        assert _subjects(server_store, mailbox) == [subject], mailbox.address
    server.settle()
    log = MessageTrackingLog(server.config.data_dir / "logs" / "MessageTracking")
    expand = log.search(TrackingQuery(event_id="EXPAND", recipients=(ann.address,)))
    assert [(e.related_recipient_address, sorted(e.recipient_address)) for e in expand] == [
        (team.address, sorted([ann.address, bob.address]))]
    [duplicate] = log.search(TrackingQuery(event_id="DUPLICATEEXPAND", recipients=(ann.address,)))
    assert duplicate.related_recipient_address == team.address
    delivered = log.search(TrackingQuery(event_id="DELIVER", subject=subject))
    assert sorted(a for e in delivered for a in e.recipient_address) == sorted(
        [ann.address, bob.address, cat.address])


def test_a_member_already_addressed_gets_one_copy(server, server_store):
    token = uuid.uuid4().hex[:8]
    domain = new_domain(server_store)
    ann = new_mailbox(server_store, domain, f"ann{token}")
    team = server_store.groups.add(f"team{token}@{domain}")
    server_store.groups.add_member(team.address, ann.address)
    subject = f"Twice addressed {token}"
    _send(server, [ann.address, team.address], subject)
    assert _subjects(server_store, ann) == [subject]
    server.settle()
    log = MessageTrackingLog(server.config.data_dir / "logs" / "MessageTracking")
    [duplicate] = log.search(TrackingQuery(event_id="DUPLICATEEXPAND", recipients=(ann.address,)))
    assert duplicate.related_recipient_address == team.address


def test_an_empty_group_is_accepted_and_delivers_nothing(server, server_store):
    token = uuid.uuid4().hex[:8]
    domain = new_domain(server_store)
    ann = new_mailbox(server_store, domain, f"ann{token}")
    team = server_store.groups.add(f"empty{token}@{domain}")
    _send(server, [team.address], f"Nobody {token}")
    server.settle()
    settle_all()
    assert _subjects(server_store, ann) == []
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        client.ehlo("client.example.org")
        assert client.mail("sender@elsewhere.example")[0] == 250
        assert client.rcpt(f"nogroup{token}@{domain}")[0] == 550


def test_a_message_sent_through_ews_to_a_group(server, server_store):
    token = uuid.uuid4().hex[:8]
    domain = new_domain(server_store)
    ann, bob = (new_mailbox(server_store, domain, f"{name}{token}") for name in ("ann", "bob"))
    team = server_store.groups.add(f"team{token}@{domain}", "Team")
    server_store.groups.add_member(team.address, bob.address)
    account = make_account(server, ann.address)
    Message(account=account, subject=f"Via EWS {token}", body="Hello team",
            to_recipients=[Mailbox(email_address=team.address)]).send()
    assert _subjects(server_store, bob) == [f"Via EWS {token}"]


def test_expansion_is_recorded_once_and_survives_a_crash(store, tmp_path):
    """Underneath: a group named twice is expanded once; the members are queue rows of their own,
    so the next pass (after a crash) finds them and nothing left to expand."""
    domain = new_domain(store)
    ann, bob = new_mailbox(store, domain, "ann"), new_mailbox(store, domain, "bob")
    team = store.groups.add(f"team@{domain}")
    for member in (ann, bob):
        store.groups.add_member(team.address, member.address)
    conn = queue.connect(tmp_path / "mail.que")
    new = queue.NewMessage(internet_id="<x@example.org>", mail_from="s@elsewhere.example", subject="s",
                           source="SMTP", connector="", client_ip="", client_hostname="", submitter=None, envid=None,
                           ret=None, received=queue.now(), expires=queue.now() + 60, body=b"Subject: s\r\n\r\nx\r\n",
                           recipients=((team.address, ("SUCCESS", "FAILURE"), None),
                                       (team.address.upper(), (), None), (ann.address, (), None)))
    message_id = queue.insert_message(conn, new)
    message = queue.select_message(conn, message_id)
    due = queue.select_recipients(conn, message_id)
    expansions = expand(store, [r.address for r in due])
    assert [(e.group, e.members, e.duplicates) for e in expansions] == [(team.address, (bob.address,),
                                                                          (ann.address,))]
    now_due = record_expansion(conn, message, due, expansions)
    assert sorted(r.address for r in now_due) == [ann.address, bob.address]
    rows = {r.address: r for r in queue.select_recipients(conn, message_id)}
    assert [r.status for r in queue.select_recipients(conn, message_id)][:2] == [queue.EXPANDED, queue.EXPANDED]
    assert rows[bob.address].notify == ("FAILURE",) and rows[bob.address].original == team.address
    assert expand(store, [r.address for r in now_due]) == []  # the next pass has nothing to expand
    conn.close()
