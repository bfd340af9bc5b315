"""The change journal, on both back ends: one row per change in the change's own transaction,
gap-free increasing sequence numbers per database, nothing from failed transactions, and moves
recorded with where the object was and what it was called."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from mailroom.store import Store
from mailroom.store import tables as t
from mailroom.store.engine import writing
from mailroom.store.errors import AlreadyExists, Conflict, NotFound
from mailroom.store.model import Attachment, Body, ItemChanges, JournalEntry, Mailbox, NewItem

from .test_store import mailbox_of, message


def journal_of(store: Store, mailbox: Mailbox, after: int) -> list[JournalEntry]:
    return store.journal.since(mailbox, after, limit=10_000)


def all_seqs(store: Store, database_id: int) -> list[int]:
    with store.engine.connect() as conn:
        return list(conn.scalars(select(t.journal.c.seq).where(t.journal.c.database_id == database_id)
                                 .order_by(t.journal.c.seq)))


def contents(store: Store, mailbox: Mailbox) -> tuple[list, list]:
    """Every folder and item row of the mailbox, as stored."""
    with store.engine.connect() as conn:
        return (sorted(conn.execute(select(t.folders).where(t.folders.c.mailbox_id == mailbox.id)).all()),
                sorted(conn.execute(select(t.items.c.id, t.items.c.folder_id, t.items.c.change_number,
                                           t.items.c.subject).where(t.items.c.mailbox_id == mailbox.id)).all()))


class Recorder:
    """Runs one store call and returns the journal rows it wrote."""

    def __init__(self, store: Store, mailbox: Mailbox) -> None:
        self.store, self.mailbox = store, mailbox

    def __call__(self, call, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN204
        before = self.store.journal.last_seq(self.mailbox)
        result = call(*args, **kwargs)
        return result, journal_of(self.store, self.mailbox, before)


def test_every_change_writes_one_row_whose_seq_is_the_new_change_number(store):
    alice = mailbox_of(store, "alice")
    record = Recorder(store, alice)
    inbox, archive = (store.folders.distinguished(alice, n).id for n in ("inbox", "archive"))

    item, rows = record(store.items.create, alice, inbox, message("hello"))
    assert [(r.action, r.object_kind, r.object_id, r.folder_id) for r in rows] == [("created", "item", item.id, inbox)]
    assert rows[0].seq == item.change_number

    changed, rows = record(store.items.update, alice, item.id, ItemChanges(set_props={"Subject": "hi"}))
    assert [(r.action, r.object_id) for r in rows] == [("modified", item.id)] and rows[0].seq == changed.change_number
    read, rows = record(store.items.update, alice, item.id, ItemChanges(set_props={"IsRead": True}))
    assert [(r.action, r.object_id) for r in rows] == [("read", item.id)] and rows[0].seq == read.change_number

    (att, with_att), rows = record(store.items.add_attachment, alice, item.id, Attachment("file", name="a",
                                                                                         content=b"a"))
    assert [(r.action, r.object_id) for r in rows] == [("modified", item.id)]
    assert rows[0].seq == with_att.change_number
    without, rows = record(store.items.delete_attachment, alice, item.id, att.id)
    assert [(r.action, r.object_id) for r in rows] == [("modified", item.id)] and rows[0].seq == without.change_number

    copy, rows = record(store.items.copy, alice, item.id, archive)
    assert [(r.action, r.object_id, r.old_object_id) for r in rows] == [("copied", copy.id, item.id)]
    assert rows[0].seq == copy.change_number

    _, rows = record(store.items.delete, alice, copy.id)
    assert [(r.action, r.object_id, r.folder_id) for r in rows] == [("deleted", copy.id, archive)]

    store.items.create(alice, inbox, message("unread 1"))
    store.items.create(alice, inbox, message("unread 2"))
    _, rows = record(store.items.mark_all_read, alice, inbox, True)
    assert [r.action for r in rows] == ["read", "read"]

    folder, rows = record(store.folders.create, alice, inbox, "Projects", "IPF.Note")
    assert [(r.action, r.object_kind, r.object_id, r.folder_id) for r in rows] == [
        ("created", "folder", folder.id, inbox)]
    assert rows[0].seq == folder.change_number
    renamed, rows = record(store.folders.update, alice, folder.id, {"display_name": "Work"})
    assert [(r.action, r.object_id) for r in rows] == [("modified", folder.id)]
    assert rows[0].seq == renamed.change_number
    _, rows = record(store.folders.delete, alice, folder.id, hard=True, trash_id=None)
    assert [(r.action, r.object_kind, r.object_id) for r in rows] == [("deleted", "folder", folder.id)]

    seqs = all_seqs(store, alice.database_id)
    assert seqs == list(range(1, len(seqs) + 1))


def test_moves_record_old_and_new_folder_and_id(store):
    alice = mailbox_of(store, "alice")
    record = Recorder(store, alice)
    inbox, archive = (store.folders.distinguished(alice, n).id for n in ("inbox", "archive"))
    item = store.items.create(alice, inbox, message("travelling"))
    moved, rows = record(store.items.move, alice, item.id, archive)
    assert len(rows) == 1
    entry = rows[0]
    assert (entry.action, entry.object_kind) == ("moved", "item")
    assert (entry.object_id, entry.old_object_id) == (moved.id, item.id)
    assert (entry.folder_id, entry.old_folder_id) == (archive, inbox)
    assert entry.seq == moved.change_number and entry.mailbox_id == alice.id

    folder = store.folders.create(alice, inbox, "Trip", "IPF.Note")
    moved_folder, rows = record(store.folders.move, alice, folder.id, archive)
    assert [(r.action, r.object_kind, r.object_id, r.folder_id, r.old_folder_id) for r in rows] == [
        ("moved", "folder", folder.id, archive, inbox)]
    assert rows[0].seq == moved_folder.change_number

    deleted_items = store.folders.distinguished(alice, "deleteditems").id
    _, rows = record(store.folders.delete, alice, folder.id, hard=False, trash_id=deleted_items)
    assert [(r.action, r.object_id, r.folder_id, r.old_folder_id) for r in rows] == [
        ("moved", folder.id, deleted_items, archive)]

    trashed, rows = record(store.items.move_or_delete, alice, moved.id, deleted_items)
    assert [(r.action, r.object_id, r.old_object_id, r.folder_id, r.old_folder_id) for r in rows] == [
        ("moved", trashed, moved.id, deleted_items, archive)]


def test_failed_changes_leave_no_row_and_no_data_change(store):
    alice = mailbox_of(store, "alice")
    inbox = store.folders.distinguished(alice, "inbox").id
    item = store.items.create(alice, inbox, message("original"))
    store.folders.create(alice, inbox, "Taken", "IPF.Note")
    last, before = store.journal.last_seq(alice), contents(store, alice)

    with pytest.raises(Conflict):
        store.items.update(alice, item.id, ItemChanges(set_props={"Subject": "stale"}),
                           expected_change=item.change_number - 1)
    with pytest.raises(AlreadyExists):
        store.folders.create(alice, inbox, "TAKEN", "IPF.Note")
    with pytest.raises(NotFound):
        store.items.move(alice, item.id, 10**9)
    with pytest.raises(NotFound):
        store.items.create(alice, 10**9, message("nowhere"))
    assert store.journal.last_seq(alice) == last
    assert contents(store, alice) == before

    def copy_then_fail(w, mailbox, source, target):  # noqa: ANN001 - the store's copy_items hook
        store.items.copy_folder_items(w, mailbox, source, target)
        raise RuntimeError("disk full")

    source = store.folders.create(alice, inbox, "Source", "IPF.Note")
    store.items.create(alice, source.id, message("inside"))
    archive = store.folders.distinguished(alice, "archive").id
    last, before = store.journal.last_seq(alice), contents(store, alice)
    with pytest.raises(RuntimeError):
        store.folders.copy(alice, source.id, archive, copy_then_fail)
    assert store.journal.last_seq(alice) == last
    assert contents(store, alice) == before
    assert store.folders.get(alice, archive).child_folder_count == 0

    with pytest.raises(ZeroDivisionError), writing(store.engine) as w:
        w.journal(alice.database_id, alice.id, "item", item.id, "modified", inbox)
        raise ZeroDivisionError
    assert store.journal.last_seq(alice) == last
    assert store.items.get(alice, item.id).props["Subject"] == "original"
    assert store.items.get(alice, item.id).change_number == item.change_number

    after = store.items.update(alice, item.id, ItemChanges(set_props={"Subject": "next"}))
    assert after.change_number == last + 1  # no gap where the failed transactions were
    seqs = all_seqs(store, alice.database_id)
    assert seqs == list(range(1, len(seqs) + 1))


def test_sequences_are_per_database_and_since_is_per_mailbox(store):
    domain = mailbox_of(store, "first").address.split("@")[1]
    alice = mailbox_of(store, "alice", domain)
    bob = mailbox_of(store, "bob", domain)
    elsewhere = mailbox_of(store, "carol", domain, database=f"DB{uuid.uuid4().hex[:6]}")
    for mailbox in (alice, bob, elsewhere, alice):
        store.items.create(mailbox, store.folders.distinguished(mailbox, "inbox").id,
                           NewItem(props={"Subject": mailbox.address}, body=Body("Text", "x")))
    for database_id in {alice.database_id, elsewhere.database_id}:
        seqs = all_seqs(store, database_id)
        assert seqs == list(range(1, len(seqs) + 1))
    assert store.journal.last_seq(alice) == store.journal.last_seq(bob)
    assert store.journal.last_seq(elsewhere) < store.journal.last_seq(alice)
    entries = journal_of(store, alice, 0)
    assert entries and {e.mailbox_id for e in entries} == {alice.id}
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert journal_of(store, alice, entries[-1].seq) == []
    assert [e.seq for e in store.journal.since(alice, 0, limit=3)] == [e.seq for e in entries[:3]]
