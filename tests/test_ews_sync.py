"""SyncFolderItems and SyncFolderHierarchy from the change journal, through exchangelib and raw
SOAP, on both back ends: paged initial syncs give each item once, later syncs give each change
once, and a SyncState from elsewhere is refused."""

from __future__ import annotations

from exchangelib import Folder, Message
from exchangelib.fields import FieldPath
from exchangelib.services import SyncFolderItems

from mailroom.store import Store
from mailroom.store import ids as store_ids
from mailroom.store.model import Body, ItemChanges, Mailbox, NewItem

from .conftest import PASSWORD, make_account, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post


def fill(store: Store, mailbox: Mailbox, folder: str, count: int) -> list[int]:
    folder_id = store.folders.distinguished(mailbox, folder).id
    return store.items.create_many(mailbox, folder_id, [
        NewItem(props={"Subject": f"message {n}"}, body=Body("Text", "x")) for n in range(count)])


def ids_of(mailbox: Mailbox, row_ids: list[int]) -> list[str]:
    return [store_ids.item_id(mailbox.guid, row_id) for row_id in row_ids]


def sync_page(account, folder, state, max_changes=100, ignore=None):  # noqa: ANN001, ANN201
    """One SyncFolderItems call: (changes, new state, IncludesLastItemInRange)."""
    svc = SyncFolderItems(account=account)
    subject = {FieldPath(field=Message.get_field_by_fieldname("subject"))}
    changes = list(svc.call(folder=folder, shape="IdOnly", additional_fields=subject, sync_state=state,
                            ignore=ignore, max_changes_returned=max_changes, sync_scope=None))
    return changes, svc.sync_state, svc.includes_last_item_in_range


def sync_all(folder, state=None) -> tuple[list, str]:  # noqa: ANN001
    changes = list(folder.sync_items(sync_state=state, only_fields=["subject", "is_read"]))
    return changes, folder.item_sync_state


def test_initial_sync_in_pages_gives_each_item_exactly_once(account, server_store, mailbox):
    fill(server_store, mailbox, "inbox", 250)
    seen, state, pages = [], None, []
    for _ in range(3):
        changes, state, last = sync_page(account, account.inbox, state)
        pages.append((len(changes), last))
        seen += changes
    assert pages == [(100, False), (100, False), (50, True)]
    assert {kind for kind, _ in seen} == {"create"}
    subjects = [item.subject for _, item in seen]
    assert sorted(subjects) == sorted(f"message {n}" for n in range(250))
    assert len({item.id for _, item in seen}) == 250
    assert sync_page(account, account.inbox, state)[0] == []


def test_each_change_after_a_sync_is_reported_once(account, server_store, mailbox):
    fill(server_store, mailbox, "inbox", 5)
    initial, state = sync_all(account.inbox)
    by_subject = {item.subject: item for _, item in initial}
    assert sorted(by_subject) == [f"message {n}" for n in range(5)]
    _, drafts_state = sync_all(account.drafts)

    changed = account.inbox.get(id=by_subject["message 0"].id)
    changed.subject = "renamed"
    changed.save(update_fields=["subject"])
    changed.subject = "renamed twice"
    changed.save(update_fields=["subject"])
    read = account.inbox.get(id=by_subject["message 1"].id)
    read.is_read = True
    read.save(update_fields=["is_read"])
    account.inbox.get(id=by_subject["message 2"].id).delete()
    moved = account.inbox.get(id=by_subject["message 3"].id)
    moved.move(account.drafts)
    new = Message(account=account, folder=account.inbox, subject="new one", body="x")
    new.save()
    fleeting = Message(account=account, folder=account.inbox, subject="fleeting", body="x")
    fleeting.save()
    fleeting.delete()

    changes, state = sync_all(account.inbox, state)
    summary = sorted((kind, getattr(item, "subject", None) if kind in ("create", "update") else None,
                      item[0].id if kind == "read_flag_change" else item.id if kind == "delete" else item.id)
                     for kind, item in changes)
    assert summary == sorted([
        ("create", "new one", new.id),
        ("delete", None, by_subject["message 2"].id),
        ("delete", None, by_subject["message 3"].id),
        ("read_flag_change", None, by_subject["message 1"].id),
        ("update", "renamed twice", by_subject["message 0"].id),
    ])
    assert next(item for kind, item in changes if kind == "read_flag_change")[1] is True
    assert sync_all(account.inbox, state)[0] == []

    drafts_changes, _ = sync_all(account.drafts, drafts_state)
    assert [(kind, item.subject) for kind, item in drafts_changes] == [("create", "message 3")]
    assert drafts_changes[0][1].id == moved.id != by_subject["message 3"].id


def test_hierarchy_initial_and_incremental(account):
    initial = list(account.root.sync_hierarchy())
    state = account.root.folder_sync_state
    names = {f.name for kind, f in initial}
    assert {kind for kind, _ in initial} == {"create"}
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Calendar", "Contacts"} <= names
    assert len(initial) == len({f.id for _, f in initial}) == len(list(account.root.walk()))

    projects = Folder(parent=account.inbox, name="Projects")
    projects.save()
    doomed = Folder(parent=account.inbox, name="Doomed")
    doomed.save()
    _, state = list(account.root.sync_hierarchy(sync_state=state)), account.root.folder_sync_state
    projects.name = "Work"
    projects.save()
    doomed_id = doomed.id
    doomed.delete()  # deleted before the next folder is made: its id must not be handed out again
    fresh = Folder(parent=account.drafts, name="Fresh")
    fresh.save()
    assert fresh.id != doomed_id
    changes = list(account.root.sync_hierarchy(sync_state=state))
    summary = sorted((kind, getattr(f, "name", None), f.id) for kind, f in changes)
    assert summary == sorted([("update", "Work", projects.id), ("delete", None, doomed_id),
                              ("create", "Fresh", fresh.id)])
    assert list(account.root.sync_hierarchy(sync_state=account.root.folder_sync_state)) == []


def items_request(folder: str, state: str | None = None, extra: str = "", max_changes: str = "100") -> bytes:
    state_el = f"<m:SyncState>{state}</m:SyncState>" if state is not None else ""
    return envelope('<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
                    f'<m:SyncFolderId>{folder}</m:SyncFolderId>{state_el}{extra}'
                    f'<m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned></m:SyncFolderItems>')


def call(server, address: str, payload: bytes):  # noqa: ANN001, ANN201
    return parse(post(server.ews_url, payload, address, PASSWORD))


def state_of(root) -> str:  # noqa: ANN001
    return root.find(".//m:SyncState", NS).text


def test_foreign_or_garbage_sync_states_are_refused(server, server_store, mailbox):
    inbox = '<t:DistinguishedFolderId Id="inbox"/>'
    fill(server_store, mailbox, "inbox", 2)
    state = state_of(call(server, mailbox.address, items_request(inbox)))
    assert codes(call(server, mailbox.address, items_request(inbox, state))) == ["NoError"]

    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    hierarchy = call(server, mailbox.address, envelope(
        '<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
        '</m:SyncFolderHierarchy>'))
    assert codes(hierarchy) == ["NoError"]
    tampered = state[:-6] + ("A" if state[-6] != "A" else "B") + state[-5:]
    for address, folder, bad in [
        (mailbox.address, '<t:DistinguishedFolderId Id="drafts"/>', state),  # another folder
        (bob.address, inbox, state),  # another mailbox
        (mailbox.address, inbox, state_of(hierarchy)),  # a hierarchy state
        (mailbox.address, inbox, tampered),
        (mailbox.address, inbox, "bm90IGEgc3RhdGU="),
        (mailbox.address, inbox, "&lt;garbage!"),
    ]:
        assert codes(call(server, address, items_request(folder, bad))) == ["ErrorInvalidSyncStateData"], bad


def test_max_changes_outside_the_schema_range_is_a_schema_error(server, mailbox):
    for value in ("0", "513", "many"):
        root = call(server, mailbox.address, items_request('<t:DistinguishedFolderId Id="inbox"/>',
                                                           max_changes=value))
        assert fault_code(root) == "ErrorSchemaValidation", value


def test_ignored_items_are_not_reported(server, server_store, mailbox):
    account = make_account(server, mailbox.address)
    fill(server_store, mailbox, "inbox", 2)
    (_, first), (_, second) = sync_all(account.inbox)[0]
    state = account.inbox.item_sync_state
    for item in (first, second):
        item = account.inbox.get(id=item.id)
        item.subject = "edited " + item.subject
        item.save(update_fields=["subject"])
    ignore = f'<m:Ignore><t:ItemId Id="{first.id}"/></m:Ignore>'
    root = call(server, mailbox.address, items_request('<t:DistinguishedFolderId Id="inbox"/>', state, ignore))
    assert codes(root) == ["NoError"]
    updates = root.findall(".//m:Changes/t:Update", NS)
    assert [u.find("t:Message/t:ItemId", NS).get("Id") for u in updates] == [second.id]
    assert root.find(".//m:IncludesLastItemInRange", NS).text == "true"


def test_changes_during_a_paged_initial_sync_are_not_doubled_or_lost(account, server_store, mailbox):
    ids = fill(server_store, mailbox, "inbox", 150)
    changes, state, last = sync_page(account, account.inbox, None)
    assert (len(changes), last) == (100, False)
    inbox = server_store.folders.distinguished(mailbox, "inbox").id
    server_store.items.create(mailbox, inbox, NewItem(props={"Subject": "late"}, body=Body("Text", "x")))
    server_store.items.delete(mailbox, ids[-1])
    while not last:
        page, state, last = sync_page(account, account.inbox, state)
        changes += page
    created = [item.subject for kind, item in changes if kind == "create"]
    assert sorted(created) == sorted([f"message {n}" for n in range(149)] + ["late"])
    # The item deleted before the walk reached it is never sent; its Delete still comes (harmless,
    # as for any id the client does not hold): the walk does not remember when it passed an id.
    others = [(kind, item.id) for kind, item in changes if kind != "create"]
    assert others == [("delete", ids_of(mailbox, [ids[-1]])[0])]


def test_full_shape_and_sync_scope(server, account, server_store, mailbox):
    Message(account=account, folder=account.inbox, subject="shaped", body="hello").save()
    inbox = server_store.folders.distinguished(mailbox, "inbox").id
    server_store.items.create(mailbox, inbox, NewItem(props={"Subject": "hidden", "IsAssociated": True,
                                                             "ItemClass": "IPM.Configuration.Test"}))
    changes = list(account.inbox.sync_items())  # every field exchangelib knows, MimeContent included
    assert [(kind, item.subject, item.body) for kind, item in changes] == [("create", "shaped", "hello")]
    assert changes[0][1].mime_content
    root = call(server, mailbox.address, items_request('<t:DistinguishedFolderId Id="inbox"/>',
                                                       extra="", max_changes="10").replace(
        b"</m:MaxChangesReturned>", b"</m:MaxChangesReturned><m:SyncScope>NormalAndAssociatedItems</m:SyncScope>"))
    assert len(root.findall(".//m:Changes/t:Create", NS)) == 2


def test_incremental_changes_come_in_pages_of_max_changes(account, server_store, mailbox):
    ids = fill(server_store, mailbox, "inbox", 5)
    _, state = sync_all(account.inbox)
    for row_id in ids:
        server_store.items.update(mailbox, row_id, ItemChanges(set_props={"Subject": f"edited {row_id}"}))
        server_store.items.update(mailbox, row_id, ItemChanges(set_props={"Importance": "High"}))
    pages, seen, last = [], [], False
    while not last:
        changes, state, last = sync_page(account, account.inbox, state, max_changes=2)
        pages.append(len(changes))
        seen += [(kind, item.id, item.subject) for kind, item in changes]
    assert pages == [2, 2, 1]
    assert seen == [("update", item_id, f"edited {row_id}") for item_id, row_id in zip(ids_of(mailbox, ids), ids,
                                                                                        strict=True)]
