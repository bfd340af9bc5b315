"""The transport service over the real queue database and the real store (both back ends): group
commit, categorization, DSNs (formats, NOTIFY), retries, delay DSN, expiry and the poison rule.

Remote delivery is the ``RemoteDelivery`` interface; here a small test implementation answers
with chosen replies (the real SMTP client is tested with two servers talking to each other)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import sqlite3
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.store.query import Page
from mailroom.transport.envelope import Recipient, Submission, SubmissionRefused
from mailroom.transport.outbound import RecipientOutcome
from mailroom.transport.queue import NewMessage, connect, insert_message
from mailroom.transport.queue_admin import QueueAdmin
from mailroom.transport.service import Settings, TransportService
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import new_domain, new_mailbox


class ScriptedRemote:
    """A ``RemoteDelivery`` that answers every recipient with one reply and remembers the calls."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        self.reply = (code, enhanced, text)
        self.calls: list[tuple[str, str, list[Recipient], bytes]] = []

    async def deliver(self, domain: str, mail_from: str, recipients: list[Recipient], raw: bytes,
                      envid: str | None = None, ret: str | None = None) -> list[RecipientOutcome]:
        self.calls.append((domain, mail_from, recipients, raw))
        return [RecipientOutcome(r.address, *self.reply, remote_host="mx.remote.example [127.0.0.1]:25")
                for r in recipients]


@asynccontextmanager
async def running(store: Store, data: Path, remote: ScriptedRemote | None = None,
                  **settings: float) -> AsyncIterator[TransportService]:
    pool = ThreadPoolExecutor(4)
    tracking = MessageTrackingLog(data / "logs")
    service = TransportService(store, data, Settings(hostname="mx.test", **settings), tracking, pool, remote)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()
        pool.shutdown()
        tracking.close()


async def drained(data: Path, service: TransportService, timeout: float = 30) -> None:
    """Wait until the queue is empty (every recipient final, every DSN delivered) and the last
    pass has written its tracking records (they follow its commit)."""
    admin = QueueAdmin(data)
    try:
        for _ in range(int(timeout / 0.05)):
            if not admin.messages() and not service.processing():
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"queue not empty: {admin.messages()}")
    finally:
        admin.close()


def _raw(sender: str, to: str, subject: str = "Quarterly numbers") -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = email.utils.make_msgid(domain="test.example")
    msg.set_content("The numbers are in.\n")
    return msg.as_bytes()


def _submission(sender: str, *rcpts: Recipient | str, ret: str | None = None, envid: str | None = None,
                subject: str = "Quarterly numbers") -> Submission:
    recipients = tuple(r if isinstance(r, Recipient) else Recipient(r) for r in rcpts)
    return Submission(mail_from=sender, recipients=recipients, raw=_raw(sender or "x@y.example", "list", subject),
                      source="SMTP", connector="test", ret=ret, envid=envid)


def _inbox(store: Store, mailbox: Mailbox) -> list[tuple[str, email.message.EmailMessage]]:
    inbox = store.folders.distinguished(mailbox, "inbox")
    items, _ = store.items.find(mailbox, inbox.id, page=Page(0, 100))
    return [(item.props.get("ItemClass", ""),
             email.message_from_bytes(store.items.mime(mailbox, item.id) or b"", policy=email.policy.default))
            for item in items]


def _status_blocks(report: email.message.EmailMessage) -> list[email.message.Message]:
    [status] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    return list(status.get_payload())


@pytest.fixture
def people(store: Store) -> tuple[Mailbox, Mailbox]:
    domain = new_domain(store)
    return new_mailbox(store, domain, "alice"), new_mailbox(store, domain, "bob")


def test_submit_is_durable_when_it_returns_and_commits_are_shared(store, people, tmp_path):
    alice, bob = people

    async def scenario() -> None:
        async with running(store, tmp_path) as service:
            first = await service.submit(_submission(alice.address, bob.address))
            with closing(sqlite3.connect(tmp_path / "queue" / "mail.que")) as conn:  # another connection sees it
                assert conn.execute("SELECT count(*) FROM messages WHERE id = ?", (int(first),)).fetchone()[0] == 1
            before = service.db.commits
            ids = await asyncio.gather(*(service.submit(_submission(alice.address, bob.address, subject=f"n{n}"))
                                         for n in range(50)))
            assert len(set(ids)) == 50
            assert service.db.commits - before < 50  # group commit: concurrent submitters shared commits
            await drained(tmp_path, service)

    asyncio.run(scenario())
    assert len(_inbox(store, bob)) == 51


def test_aliases_resolve_and_unknown_local_recipients_get_a_failure_dsn(store, people, tmp_path):
    alice, bob = people
    domain = bob.address.split("@")[1]
    store.directory.add_alias(bob.address, f"robert@{domain}")

    async def scenario() -> None:
        async with running(store, tmp_path) as service:
            await service.submit(_submission(alice.address, f"ROBERT@{domain}", Recipient(
                f"nobody@{domain}", orcpt=f"rfc822;nobody@{domain}"), envid="ENV-42", ret="HDRS"))
            await drained(tmp_path, service)
            resolved = service.tracking.search(TrackingQuery(event_id="RESOLVE"))
            assert [(e.recipient_address, e.related_recipient_address) for e in resolved] == [
                ([bob.address], f"ROBERT@{domain}")]
            assert {e.event_id for e in service.tracking.search(TrackingQuery())} >= {"DELIVER", "FAIL", "DSN"}

    asyncio.run(scenario())
    [(_cls, delivered)] = _inbox(store, bob)
    assert delivered["Subject"] == "Quarterly numbers"
    [(item_class, report)] = _inbox(store, alice)
    assert item_class == "REPORT.IPM.Note.NDR"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Subject"] == "Undeliverable: Quarterly numbers"
    per_message, per_recipient = _status_blocks(report)
    assert per_message["Reporting-MTA"] == "dns; mx.test"
    assert per_message["Original-Envelope-Id"] == "ENV-42"
    assert per_recipient["Final-Recipient"] == f"rfc822; nobody@{domain}"
    assert per_recipient["Original-Recipient"] == f"rfc822; nobody@{domain}"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 User unknown"
    types = [p.get_content_type() for p in report.iter_parts()]
    assert types == ["text/plain", "message/delivery-status", "text/rfc822-headers"]  # RET=HDRS: headers only
    assert "Subject: Quarterly numbers" in report.get_payload()[2].get_content()


def test_permanent_remote_failure_with_ret_full_returns_the_whole_message(store, people, tmp_path):
    alice, _bob = people
    remote = ScriptedRemote(550, "5.1.1", "<carol@remote.example>: no such user")

    async def scenario() -> None:
        async with running(store, tmp_path, remote) as service:
            await service.submit(_submission(alice.address, "carol@remote.example", ret="FULL"))
            await drained(tmp_path, service)

    asyncio.run(scenario())
    [(domain, mail_from, rcpts, _raw_sent)] = remote.calls
    assert (domain, mail_from, [r.address for r in rcpts]) == ("remote.example", alice.address,
                                                              ["carol@remote.example"])
    [(_cls, report)] = _inbox(store, alice)
    _, block = _status_blocks(report)
    assert (block["Action"], block["Status"]) == ("failed", "5.1.1")
    assert block["Remote-MTA"] == "dns; mx.remote.example [127.0.0.1]:25"
    assert "no such user" in block["Diagnostic-Code"]
    original = report.get_payload()[2]
    assert original.get_content_type() == "message/rfc822"
    assert "The numbers are in." in original.get_payload()[0].get_content()


def test_notify_success_never_and_the_null_sender(store, people, tmp_path):
    alice, bob = people
    remote = ScriptedRemote(250, "2.0.0", "Queued as 1234")

    async def scenario() -> None:
        async with running(store, tmp_path, remote) as service:
            await service.submit(_submission(alice.address, Recipient(bob.address, notify=("SUCCESS",)),
                                             Recipient("carol@remote.example", notify=("SUCCESS", "FAILURE"))))
            await service.submit(_submission(alice.address, Recipient(f"nobody@{alice.address.split('@')[1]}",
                                                                      notify=("NEVER",))))
            await service.submit(_submission("", f"ghost@{alice.address.split('@')[1]}"))  # from <>: no DSN
            await service.submit(_submission("<>", f"ghost@{alice.address.split('@')[1]}"))  # as SMTP gives it
            await drained(tmp_path, service)

    asyncio.run(scenario())
    reports = {msg["Subject"]: (cls, msg) for cls, msg in _inbox(store, alice)}
    assert set(reports) == {"Delivered: Quarterly numbers", "Relayed: Quarterly numbers"}
    item_class, delivered = reports["Delivered: Quarterly numbers"]
    assert item_class == "REPORT.IPM.Note.DR"
    _, block = _status_blocks(delivered)
    assert (block["Final-Recipient"], block["Action"], block["Status"]) == (f"rfc822; {bob.address}", "delivered",
                                                                           "2.0.0")
    _, block = _status_blocks(reports["Relayed: Quarterly numbers"][1])
    assert (block["Final-Recipient"], block["Action"]) == ("rfc822; carol@remote.example", "relayed")


def test_transient_failures_retry_then_a_delay_dsn_then_expiry(store, people, tmp_path):
    alice, _bob = people
    remote = ScriptedRemote(451, "4.4.1", "Connection timed out")

    async def scenario() -> None:
        async with running(store, tmp_path, remote, transient_failure_retry_interval=0.2,
                           message_retry_interval=0.2, delay_notification_timeout=0.5,
                           message_expiration_timeout=1.5) as service:
            await service.submit(_submission(alice.address, "carol@remote.example"))
            await asyncio.sleep(0.3)
            admin = QueueAdmin(tmp_path)
            [queue] = [q for q in admin.queues() if q.identity == "remote.example"]
            assert (queue.delivery_type, queue.message_count) == ("DnsConnectorDelivery", 1)
            assert "4.4.1" in queue.last_error
            admin.close()
            await drained(tmp_path, service)
            events = [e.event_id for e in service.tracking.search(TrackingQuery(recipients=("carol@remote.example",)))]
            assert events.count("DEFER") >= 2 and events.count("DSN") == 2  # the delay DSN and the failure DSN
            assert [e for e in events if e != "DSN"][-1] == "FAIL"

    asyncio.run(scenario())
    assert len(remote.calls) >= 3  # retried
    reports = {msg["Subject"]: (cls, msg) for cls, msg in _inbox(store, alice)}
    assert set(reports) == {"Delivery delayed: Quarterly numbers", "Undeliverable: Quarterly numbers"}
    item_class, delayed = reports["Delivery delayed: Quarterly numbers"]
    assert item_class == "REPORT.IPM.Note.Delayed"
    _, block = _status_blocks(delayed)
    assert (block["Action"], block["Status"]) == ("delayed", "4.4.1") and block["Will-Retry-Until"]
    _, block = _status_blocks(reports["Undeliverable: Quarterly numbers"][1])
    assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
    assert "expired" in block["Diagnostic-Code"]


def test_a_message_that_crashed_twice_goes_to_the_poison_queue(store, people, tmp_path):
    """The crash-count rule at the queue level (the crash itself is simulated end to end in
    test_transport_crash.py): a message whose processing began twice without finishing is not
    processed a third time; resuming it from the poison queue delivers it."""
    alice, bob = people

    with closing(connect(tmp_path / "queue" / "mail.que")) as conn:  # what two crashes leave behind
        conn.execute("BEGIN")
        message_id = insert_message(conn, NewMessage(
            internet_id="<poison@test.example>", mail_from=alice.address, subject="Poison", source="SMTP",
            connector="test", client_ip="", client_hostname="", submitter=None, envid=None, ret=None,
            received=time.time(), expires=time.time() + 3600, body=_raw(alice.address, bob.address, "Poison"),
            recipients=((bob.address, (), None),)))
        conn.execute("UPDATE messages SET crash_count = 2 WHERE id = ?", (message_id,))
        conn.execute("COMMIT")

    async def scenario() -> None:
        async with running(store, tmp_path) as service:
            await asyncio.sleep(0.5)
            admin = QueueAdmin(tmp_path)
            assert _inbox(store, bob) == []
            [poisoned] = admin.messages("Poison")
            assert (poisoned.message.id, poisoned.status) == (message_id, "Suspended")
            assert [e.event_id for e in service.tracking.search(TrackingQuery(event_id="POISONMESSAGE"))]
            admin.resume(message_id)
            admin.close()
            service.wake()
            await drained(tmp_path, service)

    asyncio.run(scenario())
    [(_cls, delivered)] = _inbox(store, bob)
    assert delivered["Subject"] == "Poison"


def test_the_queue_viewer_reads_one_moment_of_the_queue(tmp_path):
    """A processing pass that ends while the viewer reads (the message gone, its DSN queued) shows
    as before or after, never as an empty queue: the viewer's two reads are one transaction."""
    def new(internet_id: str, recipient: str) -> NewMessage:
        return NewMessage(internet_id=internet_id, mail_from="a@test.example", subject="s", source="SMTP",
                          connector="test", client_ip="", client_hostname="", submitter=None, envid=None,
                          ret=None, received=time.time(), expires=time.time() + 3600, body=b"Subject: s\r\n\r\nx\r\n",
                          recipients=((recipient, (), None),))

    path = tmp_path / "queue" / "mail.que"
    with closing(connect(path)) as conn:
        original = insert_message(conn, new("<original@test.example>", "b@remote.example"))
        conn.execute("UPDATE messages SET categorized = 1 WHERE id = ?", (original,))  # retrying
    admin = QueueAdmin(tmp_path)
    writer = connect(path)

    def finish_the_pass_between_the_reads(statement: str) -> None:
        if "FROM recipients" in statement:
            admin.conn.set_trace_callback(None)
            writer.execute("BEGIN IMMEDIATE")
            insert_message(writer, new("<dsn@test.example>", "a@test.example"))
            writer.execute("DELETE FROM messages WHERE id = ?", (original,))
            writer.execute("COMMIT")

    admin.conn.set_trace_callback(finish_the_pass_between_the_reads)
    try:
        assert [i.message.id for i in admin.messages()] == [original]
        assert [i.message.internet_id for i in admin.messages()] == ["<dsn@test.example>"]
    finally:
        admin.close()
        writer.close()


def test_refusals(store, people, tmp_path):
    alice, _bob = people

    async def scenario() -> None:
        async with running(store, tmp_path) as service:
            with pytest.raises(SubmissionRefused) as refused:
                await service.submit(Submission(alice.address, (), b"Subject: x\r\n\r\nx\r\n", "SMTP", "test"))
            assert refused.value.reply.startswith("554 5.5.1")
        with pytest.raises(SubmissionRefused) as refused:
            await service.submit(_submission(alice.address, alice.address))
        assert refused.value.reply.startswith("421")

    asyncio.run(scenario())


def test_the_same_message_queued_twice_at_once_is_delivered_once(store, people, tmp_path):
    alice, bob = people
    submission = _submission(alice.address, bob.address)

    async def scenario() -> None:
        async with running(store, tmp_path) as service:
            await asyncio.gather(*(service.submit(submission) for _ in range(5)))
            await drained(tmp_path, service)
            events = [e.event_id for e in service.tracking.search(TrackingQuery(recipients=(bob.address,)))]
            assert sorted(events) == ["DELIVER"] + ["DUPLICATEDELIVER"] * 4

    asyncio.run(scenario())
    assert len(_inbox(store, bob)) == 1
