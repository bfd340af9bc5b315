"""Local delivery in batches (several messages in one store transaction), the batching writer
the transport uses, the mail-flow caches behind them (directory, OOF), on both back ends; and the
queue's unsynced bookkeeping commits."""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import os
import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailroom.content import junk, meetings, oof, recipients
from mailroom.content.meetings import Attendee, Meeting
from mailroom.content.recipients import Address
from mailroom.store import Store
from mailroom.store.cache import SharedCache
from mailroom.store.model import Mailbox
from mailroom.store.query import Page
from mailroom.transport.delivery import LocalDeliveries
from mailroom.transport.local import DeliveryResult, LocalMessage, deliver_batch, deliver_local
from mailroom.transport.queue import QueueDatabase

from .conftest import new_domain, new_mailbox


def _raw(sender: str, to: str, subject: str = "Hello", message_id: str | None = None) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain="test.example")
    msg.set_content("Body text.\n")
    return msg.as_bytes()


def _inbox_subjects(store: Store, mailbox: Mailbox) -> list[str]:
    inbox = store.folders.distinguished(mailbox, "inbox")
    items, total = store.items.find(mailbox, inbox.id, page=Page(0, 1000))
    assert total == len(items) == inbox.total_count
    return sorted(item.props.get("Subject", "") for item in items)


@pytest.fixture
def people(store: Store) -> tuple[Mailbox, Mailbox, Mailbox]:
    domain = new_domain(store)
    return (new_mailbox(store, domain, "alice"), new_mailbox(store, domain, "bob"),
            store.directory.add_mailbox(f"carol@{domain}", None, database="DB02"))


def test_a_batch_delivers_each_message_once_per_mailbox(store, people):
    alice, bob, carol = people
    store.directory.add_alias(bob.address, f"robert@{bob.address.split('@')[1]}")
    earlier = _raw("x@remote.example", "many", "earlier")
    deliver_local(store, earlier, [alice.address])
    twice = _raw("x@remote.example", "many", "twice")
    messages = [
        LocalMessage(_raw("x@remote.example", "many", "one"), [alice.address, bob.address, carol.address]),
        LocalMessage(twice, [bob.address, f"ROBERT@{bob.address.split('@')[1]}"]),  # primary and alias
        LocalMessage(twice, [bob.address, alice.address]),  # the same message again in the batch
        LocalMessage(earlier, [alice.address, carol.address]),  # alice had it before the batch
        LocalMessage(_raw("x@remote.example", "many", "stranger"), ["nobody@remote.example", carol.address]),
    ]
    results = deliver_batch(store, messages)
    assert [(r.delivered, r.duplicates, r.not_local) for r in results] == [
        ([alice.address, bob.address, carol.address], [], []),
        ([bob.address], [], []),
        ([alice.address], [bob.address], []),
        ([carol.address], [alice.address], []),
        ([carol.address], [], ["nobody@remote.example"]),
    ]
    assert _inbox_subjects(store, alice) == ["earlier", "one", "twice"]
    assert _inbox_subjects(store, bob) == ["one", "twice"]
    assert _inbox_subjects(store, carol) == ["earlier", "one", "stranger"]


def test_the_batching_writer_delivers_concurrent_messages_exactly_once(store, people):
    alice, bob, carol = people
    repeated = _raw("x@remote.example", "many", "repeated")

    async def scenario() -> list:
        deliveries = LocalDeliveries(store, max_batch=7)
        try:
            calls = [deliveries.deliver(LocalMessage(_raw("x@remote.example", "many", f"m{i:02}"),
                                                     [(alice, bob, carol)[i % 3].address])) for i in range(30)]
            calls += [deliveries.deliver(LocalMessage(repeated, [alice.address])) for _ in range(4)]
            return await asyncio.gather(*calls)
        finally:
            await deliveries.close()

    results = asyncio.run(scenario())
    assert [r.delivered for r in results[:30]] == [[(alice, bob, carol)[i % 3].address] for i in range(30)]
    assert sorted(len(r.delivered) for r in results[30:]) == [0, 0, 0, 1]
    assert sum(len(r.duplicates) for r in results[30:]) == 3
    assert _inbox_subjects(store, alice) == sorted([f"m{i:02}" for i in range(0, 30, 3)] + ["repeated"])
    assert _inbox_subjects(store, bob) == [f"m{i:02}" for i in range(1, 30, 3)]
    assert _inbox_subjects(store, carol) == [f"m{i:02}" for i in range(2, 30, 3)]


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="thread priorities are Linux's")
def test_delivery_yields_while_it_keeps_up_and_not_when_it_falls_behind(store, people):
    """A batch that took everything waiting is written at a lower priority (nice 10 more than the
    process); one that left messages waiting, or with the transport busy with many more, at the
    process's own."""
    alice, _bob, _carol = people
    own = os.getpriority(os.PRIO_PROCESS, 0)

    class Recording(LocalDeliveries):
        priorities: list[tuple[int, int]] = []

        def _deliver(self, messages: list[LocalMessage]) -> list:
            self.priorities.append((len(messages), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
            return super()._deliver(messages)

    in_transport = [0]

    async def scenario() -> None:
        deliveries = Recording(store, max_batch=4, waiting=lambda: in_transport[0])
        try:
            await deliveries.deliver(LocalMessage(_raw("x@remote.example", "many", "alone"), [alice.address]))
            await asyncio.gather(*(deliveries.deliver(LocalMessage(_raw("x@remote.example", "many", f"m{i}"),
                                                                   [alice.address])) for i in range(6)))
            in_transport[0] = 50
            await deliveries.deliver(LocalMessage(_raw("x@remote.example", "many", "busy"), [alice.address]))
        finally:
            await deliveries.close()

    asyncio.run(scenario())
    lower = min(own + 10, 19)
    assert Recording.priorities == [(1, lower), (4, own), (2, lower), (1, own)]
    assert len(_inbox_subjects(store, alice)) == 8


def _replies(result: DeliveryResult) -> list[tuple[str, list[str], str]]:
    """The automatic replies a delivery handed back: envelope sender, recipients, Subject."""
    return [(s.mail_from, [r.address for r in s.recipients], email.message_from_bytes(s.raw)["Subject"])
            for s in result.outgoing]


def test_an_oof_change_made_through_another_handle_applies_to_the_next_delivery(store, store_url, people):
    alice, _bob, carol = people
    other = Store.open(store_url, pool_size=1)  # as EWS's SetUserOofSettings in the server would
    dave = f"dave@{carol.address.split('@')[1]}"
    try:
        assert _replies(deliver_local(store, _raw(carol.address, alice.address, "before"), [alice.address])) == []
        oof.save(other, alice, oof.OofSettings(state="Enabled", internal_reply="Away", external_reply="Away"))
        during = deliver_local(store, _raw(carol.address, alice.address, "during"), [alice.address])
        assert _replies(during) == [("", [carol.address], "Automatic reply: during")]  # from <>, RFC 3834
        oof.save(other, alice, oof.OofSettings(state="Disabled"))
        assert _replies(deliver_local(store, _raw(dave, alice.address, "after"), [alice.address])) == []
    finally:
        other.close()


def test_an_automatic_reply_goes_to_the_envelope_sender_and_never_to_the_null_sender(store, people):
    alice, bob, carol = people
    oof.save(store, alice, oof.OofSettings(state="Enabled", internal_reply="Away", external_reply="Away"))
    from_null = deliver_local(store, _raw(carol.address, alice.address, "bounce"), [alice.address], mail_from="")
    assert _replies(from_null) == []  # a bounce or another responder's answer
    enveloped = deliver_local(store, _raw(carol.address, alice.address, "list"), [alice.address],
                              mail_from=bob.address)
    assert _replies(enveloped) == [("", [bob.address], "Automatic reply: list")]
    assert oof.load(store, alice).answered == (bob.address,)  # carol, the From, was not answered


def test_directory_changes_through_another_handle_reach_mail_flow_at_once(store, store_url, people):
    alice, _bob, _carol = people
    domain = alice.address.split("@")[1]
    other = Store.open(store_url, pool_size=1)
    try:
        assert store.directory.lookup(alice.address) == alice
        other.directory.add_alias(alice.address, f"al@{domain}")
        assert store.directory.lookup(f"al@{domain}").id == alice.id
        assert store.directory.lookup(alice.address).aliases == (f"al@{domain}",)
        other.directory.remove_alias(f"al@{domain}")
        assert store.directory.lookup(f"al@{domain}") is None
        fresh = new_domain(other)
        assert store.directory.accepts(fresh.upper())
        other.directory.remove_domain(fresh)
        assert not store.directory.accepts(fresh)
        other.directory.remove_mailbox(alice.address)
        assert store.directory.lookup(alice.address) is None
        result = deliver_local(store, _raw("x@remote.example", alice.address), [alice.address])
        assert (result.delivered, result.not_local) == ([], [alice.address])
    finally:
        other.close()


def test_a_shared_cache_keeps_answers_for_its_time_and_never_one_loaded_across_a_forget():
    cache: SharedCache[str, int] = SharedCache(seconds=60)
    loads: list[str] = []

    def load(value: int | None) -> int | None:
        loads.append("load")
        return value

    assert cache.get("a", lambda: load(1)) == 1
    assert cache.get("a", lambda: load(2)) == 1  # kept
    assert cache.get("missing", lambda: load(None)) is None
    assert cache.get("missing", lambda: load(None)) is None  # a miss is never kept
    assert len(loads) == 3

    def load_while_changed() -> int:
        cache.forget()  # a change committed while this load ran
        return 3

    cache.forget("a")
    assert cache.get("a", load_while_changed) == 3
    assert cache.get("a", lambda: load(4)) == 4  # the answer loaded across the change was not kept
    expired: SharedCache[str, int] = SharedCache(seconds=0)
    expired.get("a", lambda: 1)
    assert expired.get("a", lambda: 2) == 2


def test_queue_bookkeeping_without_fsync_is_committed_when_its_future_resolves(tmp_path):
    db = QueueDatabase(tmp_path / "mail.que")
    try:
        write = "INSERT INTO messages_probe VALUES (?)"
        db.run(lambda conn: conn.execute("CREATE TABLE messages_probe (n INTEGER)")).result(10)
        futures = [db.run(lambda conn, n=n: conn.execute(write, (n,)), durable=bool(n % 2)) for n in range(6)]
        futures.append(db.run(lambda conn: conn.execute(write, (6,)), durable=False))
        [f.result(10) for f in futures]
        with closing(sqlite3.connect(tmp_path / "mail.que")) as other:  # another connection sees every one
            assert sorted(n for (n,) in other.execute("SELECT n FROM messages_probe")) == list(range(7))
    finally:
        db.close()


def test_delegate_changes_through_another_handle_reach_meeting_copies_at_once(store, store_url, people):
    alice, bob, _carol = people
    other = Store.open(store_url, pool_size=1)  # as EWS's AddDelegate in the server would
    try:
        assert store.permissions.meeting_copies(alice) == ("DelegatesAndSendInformationToMe", ())  # cached
        other.permissions.add_delegate(alice, bob, {}, receive_copies=True, view_private=False)
        assert store.permissions.meeting_copies(alice)[1] == (bob,)
        other.directory.set_display_name(bob.address, "Robert")
        assert store.permissions.meeting_copies(alice)[1][0].display_name == "Robert"
        other.permissions.set_deliver_meeting_requests(alice, "DelegatesOnly")
        assert store.permissions.meeting_copies(alice)[0] == "DelegatesOnly"
        other.permissions.remove_delegate(alice, bob, [])
        assert store.permissions.meeting_copies(alice) == ("DelegatesOnly", ())
    finally:
        other.close()


def test_a_room_answers_a_request_once_and_not_its_redelivery(store, people):
    """The attendant's answer is handed back with the delivery that made the booking; a
    redelivery of the same request (recognised by Message-ID) makes none."""
    alice, _bob, _carol = people
    room = store.directory.add_mailbox(f"board@{alice.address.split('@')[1]}", None, "Boardroom", kind="room")
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    request = Meeting("REQUEST", "uid-once", start, start + timedelta(hours=1), subject="Planning",
                      organizer=Address("Alice", alice.address),
                      attendees=[Attendee(Address("Boardroom", room.address), "Resources")])
    props = {"Subject": "Planning", "From": recipients.build("From", [Address("Alice", alice.address)], True),
             "InternetMessageId": email.utils.make_msgid(domain="test.example")}
    raw = meetings.build_message(props, None, request)
    first = deliver_local(store, raw, [room.address], mail_from=alice.address)
    [answer] = first.outgoing
    assert (answer.mail_from, [r.address for r in answer.recipients]) == (room.address, [alice.address])
    assert email.message_from_bytes(answer.raw)["Subject"] == "Accepted: Planning"
    again = deliver_local(store, raw, [room.address], mail_from=alice.address)
    assert (again.duplicates, again.outgoing) == ([room.address], [])


def _folder_subjects(store: Store, mailbox: Mailbox, folder: str) -> list[str]:
    found, _ = store.items.find(mailbox, store.folders.distinguished(mailbox, folder).id, page=Page(0, 100))
    return sorted(item.props.get("Subject", "") for item in found)


def test_mail_from_a_blocked_sender_goes_to_junk_email_unless_trusted(store, people):
    alice, bob, carol = people
    junk.change(store, alice, block=("Spam.Example", bob.address), trust=("friend@spam.example",))
    oof.save(store, alice, oof.OofSettings(state="Enabled", internal_reply="Away", external_reply="Away"))
    results = deliver_batch(store, [
        LocalMessage(_raw("offer@spam.example", alice.address, "domain blocked"), [alice.address]),
        LocalMessage(_raw("friend@spam.example", alice.address, "trusted"), [alice.address]),
        LocalMessage(_raw(carol.address, alice.address, "envelope blocked"), [alice.address], mail_from=bob.address),
        LocalMessage(_raw(carol.address, alice.address, "fine"), [alice.address, bob.address],
                     mail_from=carol.address),
    ])
    assert _folder_subjects(store, alice, "junkemail") == ["domain blocked", "envelope blocked"]
    assert _inbox_subjects(store, alice) == ["fine", "trusted"]
    assert _inbox_subjects(store, bob) == ["fine"]  # alice's lists are hers alone
    replies = [r.recipients[0].address for result in results for r in result.outgoing]
    assert replies == ["friend@spam.example", carol.address]  # junk mail gets no automatic reply
    assert junk.change(store, alice, unblock=(bob.address,), trust=("spam.example",)) == junk.JunkLists((), (
        "friend@spam.example", "spam.example"))
