"""The store's conformance suite: every test runs on SQLite and on PostgreSQL (fixture ``store``).

Directory, the default folder tree, folder counters, items, move/copy, extended properties,
attachments, and parallel writers on one mailbox.
"""

from __future__ import annotations

import threading
import uuid
from importlib import resources

import pytest
from lxml import etree
from sqlalchemy import bindparam, func, select

from mailroom.store import Store
from mailroom.store import tables as t
from mailroom.store.default_folders import ABSENT_DISTINGUISHED
from mailroom.store.errors import AlreadyExists, Conflict, InvalidOperation, NotFound
from mailroom.store.model import Attachment, Body, ExtendedValue, ItemChanges, Mailbox, NewItem, extended_key
from mailroom.store.query import Page, Prop, Sort


def domain_of(store: Store) -> str:
    name = f"d{uuid.uuid4().hex[:10]}.example"
    store.directory.add_domain(name)
    return name


def mailbox_of(store: Store, local: str = "user", domain: str | None = None, **kwargs: str) -> Mailbox:
    return store.directory.add_mailbox(f"{local}@{domain or domain_of(store)}", "not-a-real-hash", **kwargs)


def rows(store: Store, table: t.Table, **where: object) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table).where(
            *(table.c[k] == v for k, v in where.items()))) or 0


def message(subject: str, **props: object) -> NewItem:
    return NewItem(props={"Subject": subject, **props}, body=Body("Text", f"body of {subject}"))


# -- directory -------------------------------------------------------------------------------

def test_domains(store):
    name = f"D{uuid.uuid4().hex[:8]}.Example."
    domain = store.directory.add_domain(name)
    assert domain.name == name.lower().rstrip(".")
    assert domain.name in [d.name for d in store.directory.domains()]
    with pytest.raises(AlreadyExists):
        store.directory.add_domain(name.upper())
    for bad in ("", "nodot", "a@b.example", "has space.example"):
        with pytest.raises(ValueError):
            store.directory.add_domain(bad)
    mailbox_of(store, "x", domain.name)
    with pytest.raises(InvalidOperation):
        store.directory.remove_domain(domain.name)
    store.directory.remove_mailbox(f"x@{domain.name}")
    elsewhere = mailbox_of(store)
    store.directory.add_alias(elsewhere.address, f"y@{domain.name}")
    with pytest.raises(InvalidOperation, match="alias"):
        store.directory.remove_domain(domain.name)
    store.directory.remove_alias(f"y@{domain.name}")
    store.directory.remove_domain(domain.name.upper())
    assert domain.name not in [d.name for d in store.directory.domains()]
    with pytest.raises(NotFound):
        store.directory.remove_domain(domain.name)


def test_mailboxes_aliases_and_lookup(store):
    domain = domain_of(store)
    alice = mailbox_of(store, "Alice", domain, display_name="Alice Example")
    assert alice.address == f"alice@{domain}"
    assert alice.display_name == "Alice Example" and alice.database_name == "DB01"
    assert mailbox_of(store, "bob", domain).display_name == "bob"
    with pytest.raises(AlreadyExists):
        mailbox_of(store, "ALICE", domain)
    with pytest.raises(NotFound):
        store.directory.add_mailbox("someone@not-accepted.example", None)
    for bad in ("no-at-sign", "@example.org", "a b@example.org", "a@b@example.org"):
        with pytest.raises(ValueError):
            store.directory.add_mailbox(bad, None)

    store.directory.add_alias(alice.address, f"A.Example@{domain}")
    with pytest.raises(AlreadyExists):
        store.directory.add_alias(alice.address, f"a.example@{domain}")
    with pytest.raises(AlreadyExists):
        store.directory.add_alias(alice.address, f"bob@{domain}")
    with pytest.raises(AlreadyExists):
        mailbox_of(store, "a.example", domain)
    with pytest.raises(NotFound):
        store.directory.add_alias(alice.address, "alice@not-accepted.example")
    with pytest.raises(NotFound):
        store.directory.add_alias(f"nobody@{domain}", f"n@{domain}")

    for address in (alice.address, alice.address.upper(), f" a.example@{domain.upper()} "):
        found = store.directory.mailbox_by_address(address)
        assert found is not None and found.id == alice.id, address
        assert found.aliases == (f"a.example@{domain}",)
    assert store.directory.mailbox_by_guid(alice.guid).address == alice.address
    assert store.directory.mailbox_by_address(f"nobody@{domain}") is None
    assert store.directory.mailbox_by_guid(str(uuid.uuid4())) is None
    listed = {m.address: m for m in store.directory.mailboxes()}
    assert listed[alice.address].aliases == (f"a.example@{domain}",)
    assert listed[f"bob@{domain}"].aliases == ()

    store.directory.remove_alias(f"A.EXAMPLE@{domain}")
    assert store.directory.mailbox_by_address(f"a.example@{domain}") is None
    with pytest.raises(NotFound):
        store.directory.remove_alias(f"a.example@{domain}")


def test_passwords_names_and_databases(store):
    domain = domain_of(store)
    alice = mailbox_of(store, "alice", domain)
    store.directory.set_password(alice.address.upper(), "new-hash")
    found = store.directory.password_hash(alice.address)
    assert found is not None and found[0].id == alice.id and found[1] == "new-hash"
    assert store.directory.password_hash(f"nobody@{domain}") is None
    store.directory.set_display_name(alice.address, "Alice A.")
    assert store.directory.mailbox_by_address(alice.address).display_name == "Alice A."
    with pytest.raises(NotFound):
        store.directory.set_password(f"nobody@{domain}", "x")
    other = mailbox_of(store, "carol", domain, database=f"DB{uuid.uuid4().hex[:6]}")
    assert other.database_id != alice.database_id and other.database_guid != alice.database_guid
    assert mailbox_of(store, "dave", domain).database_id == alice.database_id


def test_removing_a_mailbox_removes_its_data(store):
    domain = domain_of(store)
    alice, bob = mailbox_of(store, "alice", domain), mailbox_of(store, "bob", domain)
    store.directory.add_alias(alice.address, f"al@{domain}")
    inbox = store.folders.distinguished(alice, "inbox")
    item = store.items.create(alice, inbox.id, NewItem(props={"Subject": "x"}, attachments=[
        Attachment("file", name="a.txt", content=b"abc")], extended=[ExtendedValue("tag:0x1234", "String", "v")]))
    store.folders.create(alice, inbox.id, "Sub", "IPF.Note")
    bob_folders = rows(store, t.folders, mailbox_id=bob.id)
    store.directory.remove_mailbox(alice.address.upper())
    assert store.directory.mailbox_by_address(alice.address) is None
    assert store.directory.mailbox_by_address(f"al@{domain}") is None
    assert store.directory.mailbox_by_guid(alice.guid) is None
    assert rows(store, t.folders, mailbox_id=alice.id) == 0
    assert rows(store, t.items, mailbox_id=alice.id) == 0
    assert rows(store, t.attachments, item_id=item.id) == 0
    assert rows(store, t.extended_properties, item_id=item.id) == 0
    assert rows(store, t.folders, mailbox_id=bob.id) == bob_folders
    with pytest.raises(NotFound):
        store.directory.remove_mailbox(alice.address)


# -- the default folder tree ---------------------------------------------------------------------

def distinguished_names() -> list[str]:
    """DistinguishedFolderIdNameType's values, read from the schema."""
    doc = etree.parse(str(resources.files("mailroom.ews").joinpath("schema/types.xsd")))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    node = doc.getroot().find(f"{xs}simpleType[@name='DistinguishedFolderIdNameType']")
    return [e.get("value") for e in node.iter(f"{xs}enumeration")]


def test_every_distinguished_folder_of_a_primary_mailbox_exists(store):
    alice, bob = mailbox_of(store, "alice"), mailbox_of(store, "bob")
    names = distinguished_names()
    # The archive mailbox's folders (archiveroot, archiveinbox ...), public folders and OneDrive are
    # not in a primary mailbox; its own Archive folder ("archive") is.
    elsewhere = {n for n in names if n.startswith(("archive", "publicfolders", "onedrive")) and n != "archive"}
    assert elsewhere == ABSENT_DISTINGUISHED
    mine = store.folders.distinguished_ids(alice)
    assert set(mine) == set(names) - elsewhere
    assert not set(mine.values()) & set(store.folders.distinguished_ids(bob).values())
    for name in elsewhere:
        with pytest.raises(NotFound):
            store.folders.distinguished(alice, name)


def test_the_default_tree_is_consistent(store):
    alice = mailbox_of(store, "alice")
    by_name = store.folders.distinguished_ids(alice)
    folders = {i: store.folders.get(alice, i) for i in by_name.values()}
    root = folders[by_name["root"]]
    assert root.parent_id is None
    for name in ("msgfolderroot", "searchfolders", "recoverableitemsroot"):
        assert folders[by_name[name]].parent_id == root.id, name
    for name in ("inbox", "drafts", "sentitems", "deleteditems", "outbox", "junkemail", "calendar", "contacts",
                 "tasks", "notes"):
        assert folders[by_name[name]].parent_id == by_name["msgfolderroot"], name
    assert folders[by_name["inbox"]].folder_class == "IPF.Note"
    assert folders[by_name["calendar"]].folder_class == "IPF.Appointment"
    assert folders[by_name["contacts"]].folder_class == "IPF.Contact"
    for folder in folders.values():
        assert folder.parent_id is None or folder.parent_id in folders
        children = sum(1 for f in folders.values() if f.parent_id == folder.id)
        assert folder.child_folder_count == children, folder.distinguished_id
        assert (folder.total_count, folder.unread_count, folder.associated_count) == (0, 0, 0)
        assert folder.change_number > 0
    listed, total = store.folders.find(alice, root.id, deep=True)
    assert total == len(folders) - 1 and {f.id for f in listed} == set(folders) - {root.id}


# -- counters ----------------------------------------------------------------------------------

def counters(store: Store, mailbox: Mailbox, folder_id: int) -> tuple[int, int, int]:
    folder = store.folders.get(mailbox, folder_id)
    return folder.total_count, folder.unread_count, folder.associated_count


def test_folder_counters_follow_every_change(store):
    alice = mailbox_of(store, "alice")
    inbox, archive = (store.folders.distinguished(alice, n).id for n in ("inbox", "archive"))
    unread = store.items.create(alice, inbox, message("unread"))
    read = store.items.create(alice, inbox, message("read", IsRead=True))
    store.items.create(alice, inbox, NewItem(props={"Subject": "config", "IsAssociated": True,
                                                    "ItemClass": "IPM.Configuration.X"}))
    assert counters(store, alice, inbox) == (2, 1, 1)
    store.items.update(alice, unread.id, ItemChanges(set_props={"IsRead": True}))
    assert counters(store, alice, inbox) == (2, 0, 1)
    store.items.update(alice, read.id, ItemChanges(set_props={"IsRead": False}))
    moved = store.items.move(alice, read.id, archive)
    assert counters(store, alice, inbox) == (1, 0, 1)
    assert counters(store, alice, archive) == (1, 1, 0)
    store.items.copy(alice, moved.id, inbox)
    assert counters(store, alice, inbox) == (2, 1, 1)
    assert store.items.mark_all_read(alice, inbox, True) == 1
    assert counters(store, alice, inbox) == (2, 0, 1)
    assert store.items.mark_all_read(alice, inbox, True) == 0
    store.items.delete(alice, moved.id)
    assert counters(store, alice, archive) == (0, 0, 0)
    store.items.empty_folder(alice, inbox, delete_subfolders=False)
    assert counters(store, alice, inbox) == (0, 0, 1)

    parent = store.folders.create(alice, inbox, "Projects", "IPF.Note")
    child = store.folders.create(alice, parent.id, "2026", "IPF.Note")
    assert store.folders.get(alice, parent.id).child_folder_count == 1
    before = store.folders.get(alice, archive).child_folder_count
    store.folders.move(alice, child.id, archive)
    assert store.folders.get(alice, parent.id).child_folder_count == 0
    assert store.folders.get(alice, archive).child_folder_count == before + 1
    store.folders.delete(alice, child.id, hard=True, trash_id=None)
    assert store.folders.get(alice, archive).child_folder_count == before


# -- items ---------------------------------------------------------------------------------------

def test_item_create_read_update_delete(store):
    alice, bob = mailbox_of(store, "alice"), mailbox_of(store, "bob")
    drafts = store.folders.distinguished(alice, "drafts").id
    created = store.items.create(alice, drafts, message("Quarterly numbers", Importance="High",
                                                        Categories=["Finance", "Q3"]))
    assert created.id and created.change_number > 0 and created.folder_id == drafts
    got = store.items.get(alice, created.id)
    assert got.props["Subject"] == "Quarterly numbers" and got.props["Importance"] == "High"
    assert got.props["Categories"] == ["Finance", "Q3"] and got.props["IsRead"] is False
    assert got.item_class == "IPM.Note" and got.body.text == "body of Quarterly numbers"
    with pytest.raises(NotFound):
        store.items.get(bob, created.id)  # ids are scoped to their mailbox
    with pytest.raises(NotFound):
        store.items.create(bob, drafts, message("into someone else's folder"))

    updated = store.items.update(alice, created.id, ItemChanges(
        set_props={"Subject": "Q3 numbers"}, delete_props=["Categories"], body=Body("HTML", "<p>hi</p>")),
        expected_change=created.change_number)
    assert updated.change_number > created.change_number
    assert updated.props["Subject"] == "Q3 numbers" and "Categories" not in updated.props
    assert (updated.body.body_type, updated.body.text) == ("HTML", "<p>hi</p>")
    with pytest.raises(Conflict):
        store.items.update(alice, created.id, ItemChanges(set_props={"Subject": "stale"}),
                           expected_change=created.change_number)
    assert store.items.get(alice, created.id).props["Subject"] == "Q3 numbers"
    cleared = store.items.update(alice, created.id, ItemChanges(delete_body=True))
    assert cleared.body is None

    with pytest.raises(NotFound):
        store.items.delete(bob, created.id)
    store.items.delete(alice, created.id)
    with pytest.raises(NotFound):
        store.items.get(alice, created.id)
    with pytest.raises(NotFound):
        store.items.update(alice, created.id, ItemChanges(set_props={"Subject": "gone"}))
    assert store.items.get_many(alice, [created.id]) == [None]


def test_find_pages_and_sorts(store):
    alice = mailbox_of(store, "alice")
    inbox = store.folders.distinguished(alice, "inbox").id
    for n in range(7):
        store.items.create(alice, inbox, message(f"m{n}", DateTimeReceived=f"2026-01-0{n + 1}T00:00:00Z"))
    found, total = store.items.find(alice, inbox, page=Page(offset=2, limit=3))
    assert total == 7 and [i.props["Subject"] for i in found] == ["m4", "m3", "m2"]  # newest first
    found, _ = store.items.find(alice, inbox, sort=[Sort(Prop("Subject"))], page=Page(limit=2))
    assert [i.props["Subject"] for i in found] == ["m0", "m1"]
    assert all(i.body is None for i in found)  # lists carry no bodies


def test_move_and_copy_make_new_ids(store):
    alice = mailbox_of(store, "alice")
    inbox, archive = (store.folders.distinguished(alice, n).id for n in ("inbox", "archive"))
    original = store.items.create(alice, inbox, NewItem(
        props={"Subject": "keep me", "IsRead": True}, body=Body("Text", "text"), mime=b"Subject: keep me\r\n\r\ntext",
        extended=[ExtendedValue(extended_key(tag=0x1234), "String", "ext")],
        attachments=[Attachment("file", name="a.txt", content_type="text/plain", content=b"abc")]))
    copy = store.items.copy(alice, original.id, archive)
    assert copy.id != original.id and copy.folder_id == archive
    assert copy.change_number > original.change_number
    assert copy.props["Subject"] == "keep me" and copy.body.text == "text"
    assert [e.value for e in copy.extended] == ["ext"]
    assert [a.name for a in copy.attachments] == ["a.txt"]
    assert store.items.attachment(alice, copy.id, copy.attachments[0].id).content == b"abc"
    assert store.items.mime(alice, copy.id) == b"Subject: keep me\r\n\r\ntext"
    store.items.update(alice, copy.id, ItemChanges(set_props={"Subject": "changed copy"}))
    assert store.items.get(alice, original.id).props["Subject"] == "keep me"

    moved = store.items.move(alice, original.id, archive)
    assert moved.id not in (original.id, copy.id) and moved.folder_id == archive
    with pytest.raises(NotFound):
        store.items.get(alice, original.id)
    assert moved.props["Subject"] == "keep me" and [e.value for e in moved.extended] == ["ext"]
    assert store.items.attachment(alice, moved.id, moved.attachments[0].id).content == b"abc"
    assert store.items.mime(alice, moved.id) == b"Subject: keep me\r\n\r\ntext"
    assert moved.props["DateTimeCreated"] == original.props["DateTimeCreated"]

    bob = mailbox_of(store, "bob")
    with pytest.raises(NotFound):
        store.items.move(alice, moved.id, store.folders.distinguished(bob, "inbox").id)
    assert store.items.get(alice, moved.id).folder_id == archive

    folder = store.folders.create(alice, inbox, "Trip", "IPF.Note")
    inside = store.items.create(alice, folder.id, message("ticket"))
    copied = store.folders.copy(alice, folder.id, archive, store.items.copy_folder_items)
    assert copied.id != folder.id and copied.parent_id == archive and copied.display_name == "Trip"
    found, total = store.items.find(alice, copied.id)
    assert total == 1 and found[0].id != inside.id and found[0].props["Subject"] == "ticket"
    with pytest.raises(AlreadyExists):
        store.folders.move(alice, folder.id, archive)  # a "Trip" is there already
    with pytest.raises(InvalidOperation):
        store.folders.move(alice, store.folders.distinguished(alice, "inbox").id, archive)
    with pytest.raises(InvalidOperation):
        store.folders.move(alice, folder.id, folder.id)


def test_extended_properties(store):
    alice = mailbox_of(store, "alice")
    inbox = store.folders.distinguished(alice, "inbox").id
    named = extended_key(set_guid="{00020329-0000-0000-C000-000000000046}", name="Keywords")
    item = store.items.create(alice, inbox, NewItem(props={"Subject": "x"}, extended=[
        ExtendedValue(extended_key(tag=0x3A4F), "String", "first"),
        ExtendedValue(named, "StringArray", ["a", "b"]),
        ExtendedValue(extended_key(set_guid="{00062008-0000-0000-C000-000000000046}", prop_id=0x8503),
                      "Boolean", "true")]))
    assert {e.key: e.value for e in item.extended} == {
        "tag:0x3a4f": "first", named: ["a", "b"],
        "set:{00062008-0000-0000-c000-000000000046}:id:0x8503": "true"}
    changed = store.items.update(alice, item.id, ItemChanges(
        set_extended=[ExtendedValue("tag:0x3a4f", "String", "second")], delete_extended=[named]))
    assert {e.key: e.value for e in changed.extended} == {
        "tag:0x3a4f": "second", "set:{00062008-0000-0000-c000-000000000046}:id:0x8503": "true"}

    folder = store.folders.create(alice, inbox, "Tagged", "IPF.Note",
                                  [ExtendedValue("tag:0x10f4", "Boolean", "false")])
    assert [(e.key, e.value) for e in folder.extended] == [("tag:0x10f4", "false")]
    folder = store.folders.update(alice, folder.id, {}, set_ext=[ExtendedValue("tag:0x3001", "String", "n")],
                                  delete_ext=["tag:0x10f4"])
    assert [(e.key, e.value) for e in folder.extended] == [("tag:0x3001", "n")]


def test_attachments(store):
    alice = mailbox_of(store, "alice")
    drafts = store.folders.distinguished(alice, "drafts").id
    item = store.items.create(alice, drafts, message("with files"))
    assert not item.props.get("HasAttachments")
    att, after = store.items.add_attachment(alice, item.id, Attachment(
        "file", name="report.pdf", content_type="application/pdf", content=b"%PDF-1.7 ..."))
    assert att.id and att.size == len(b"%PDF-1.7 ...")
    assert after.change_number > item.change_number and after.props["HasAttachments"] is True
    inline, after = store.items.add_attachment(alice, item.id, Attachment(
        "file", name="logo.png", content_id="logo@x", is_inline=True, content=b"\x89PNG"))
    stored = store.items.attachment(alice, item.id, att.id)
    assert (stored.name, stored.content_type, stored.content) == ("report.pdf", "application/pdf", b"%PDF-1.7 ...")
    assert [a.name for a in store.items.get(alice, item.id).attachments] == ["report.pdf", "logo.png"]
    after = store.items.delete_attachment(alice, item.id, att.id)
    assert after.props["HasAttachments"] is False  # only an inline one is left
    with pytest.raises(NotFound):
        store.items.attachment(alice, item.id, att.id)
    with pytest.raises(NotFound):
        store.items.delete_attachment(alice, item.id, att.id)
    other = store.items.create(alice, drafts, message("other"))
    with pytest.raises(NotFound):
        store.items.attachment(alice, other.id, inline.id)  # an attachment belongs to its item


# -- parallel writers ----------------------------------------------------------------------------

def run_threads(count: int, work) -> list[BaseException]:  # noqa: ANN001 - a callable of the thread number
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_parallel_writers_get_unique_gap_free_change_numbers(store):
    alice = mailbox_of(store, "alice")
    inbox = store.folders.distinguished(alice, "inbox").id
    counter = store.items.create(alice, inbox, message("0"))
    start_seq = store.journal.last_seq(alice)
    threads, rounds = 4, 12
    seen: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for r in range(rounds):
            created = store.items.create(alice, inbox, message(f"t{n}-{r}"))
            while True:  # optimistic increment of the counter item: retried on Conflict, never lost
                current = store.items.get(alice, counter.id, body=False, attachments=False)
                try:
                    done = store.items.update(alice, counter.id, ItemChanges(
                        set_props={"Subject": str(int(current.props["Subject"]) + 1)}),
                        expected_change=current.change_number)
                    break
                except Conflict:
                    continue
            with lock:
                seen.extend((created.change_number, done.change_number))

    assert run_threads(threads, work) == []
    assert store.items.get(alice, counter.id).props["Subject"] == str(threads * rounds)
    assert store.folders.get(alice, inbox).total_count == 1 + threads * rounds
    assert len(seen) == len(set(seen)) == 2 * threads * rounds
    with store.engine.connect() as conn:
        seqs = list(conn.scalars(select(t.journal.c.seq).where(t.journal.c.database_id == alice.database_id,
                                                               t.journal.c.seq > start_seq)
                                 .order_by(t.journal.c.seq)))
    assert seqs == list(range(start_seq + 1, start_seq + 1 + len(seqs)))
    assert set(seen) <= set(seqs)
    assert len(seqs) == 2 * threads * rounds


# -- statements on the driver ----------------------------------------------------------------
def test_prepared_statements_write_and_read_as_sqlalchemy_does(store):
    """``Prepared`` runs statements on the driver cursor with SQLAlchemy's own value conversions:
    a row it writes reads back through SQLAlchemy as SQLAlchemy would have written it, the rows a
    RETURNING gives come in order, IN lists expand, and what it cannot do the same way it refuses."""
    from mailroom.store.engine import _MAX_FORMS as MAX_FORMS  # noqa: PLC0415 (internals under test)
    from mailroom.store.engine import Prepared, writing  # noqa: PLC0415

    mailbox = mailbox_of(store)
    inbox = store.folders.distinguished(mailbox, "inbox")
    insert_items = Prepared(t.items.insert().returning(t.items.c.id, t.items.c.props, t.items.c.is_read,
                                                       sort_by_parameter_order=True))
    base = {"mailbox_id": mailbox.id, "folder_id": inbox.id, "item_class": "IPM.Note", "is_associated": False,
            "importance": "Normal", "size": 1, "has_attachments": False, "date_created": "2026-11-22T00:00:00Z",
            "last_modified": "2026-11-22T00:00:00Z"}
    values = [{**base, "change_number": n, "is_read": n % 2 == 0, "props": {"Categories": ["é", str(n)], "n": n}}
              for n in range(1, 6)]
    with writing(store.engine) as w:
        returned = insert_items.inserted(w.conn, values)
        counts = Prepared(t.folders.update().where(t.folders.c.id == bindparam("folder"))
                          .values(unread_count=t.folders.c.unread_count + bindparam("d")))
        counts.run_many(w.conn, [{"folder": inbox.id, "d": 2}, {"folder": inbox.id, "d": 3}])
    assert [r["props"]["n"] for r in returned] == [1, 2, 3, 4, 5]
    assert [r["is_read"] for r in returned] == [False, True, False, True, False]
    with store.engine.connect() as conn:
        stored = conn.execute(select(t.items.c.id, t.items.c.props, t.items.c.is_read)
                              .where(t.items.c.id.in_([r["id"] for r in returned])).order_by(t.items.c.id)).all()
        unread = conn.scalar(select(t.folders.c.unread_count).where(t.folders.c.id == inbox.id))
    assert [tuple(row) for row in stored] == [(r["id"], r["props"], r["is_read"]) for r in returned]
    assert unread == inbox.unread_count + 5
    by_ids = Prepared(select(t.items.c.id, t.items.c.is_read).where(
        t.items.c.id.in_(bindparam("ids", expanding=True)), t.items.c.is_read.in_(bindparam("read", expanding=True))))
    ids = [r["id"] for r in returned]
    with writing(store.engine) as w:  # IN lists of several lengths, each expanded as SQLAlchemy expands it
        assert by_ids.run(w.conn, ids=ids[:3], read=[True]) == [{"id": ids[1], "is_read": True}]
        assert sorted(r["id"] for r in by_ids.run(w.conn, ids=ids, read=[False, True])) == ids
        assert by_ids.run(w.conn, ids=[], read=[True]) == []
        for length in range(1, MAX_FORMS + 8):  # the forms kept for IN-list lengths stay bounded
            assert len(by_ids.run(w.conn, ids=ids[:1] * length, read=[False])) == 1
        assert len(by_ids._forms) <= MAX_FORMS
    with pytest.raises(ValueError, match="give every column a value"), writing(store.engine) as w:
        Prepared(t.items.insert()).run_many(w.conn, [{k: v for k, v in values[0].items() if k != "is_read"}])
    with store.engine.connect() as conn, pytest.raises(RuntimeError, match="inside a transaction"):
        counts.run(conn, folder=inbox.id, d=1)
