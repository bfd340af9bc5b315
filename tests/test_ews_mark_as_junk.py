"""MarkAsJunk through exchangelib and raw SOAP, on both back ends: with MoveItem an item moves to
Junk Email (or back to the Inbox) and the answer carries its new id; without, nothing moves;
marking blocks the sender (its next message is delivered to Junk Email) and marking as not junk
unblocks it; another mailbox's item is refused and stays where it is."""

from __future__ import annotations

from exchangelib import Mailbox, Message
from exchangelib.errors import ErrorItemNotFound

from mailroom.store import ids
from mailroom.store.model import NewItem

from .conftest import PASSWORD, make_account, new_mailbox, settle_all
from .soap import NS, codes, envelope, parse, post


def _saved(account, subject: str) -> Message:
    message = Message(account=account, folder=account.inbox, subject=subject, body="Buy now")
    message.save()
    return message


def test_junk_moves_to_junk_email_and_back_to_the_inbox(account):
    spam, kept = _saved(account, "Cheap watches"), _saved(account, "Lunch?")
    [(junk_id, junk_key)] = account.bulk_mark_as_junk([spam], is_junk=True, move_item=True)
    assert [m.subject for m in account.junk.all()] == ["Cheap watches"]
    assert [m.subject for m in account.inbox.all()] == ["Lunch?"]
    [moved] = account.fetch(ids=[(junk_id, junk_key)])
    assert moved.subject == "Cheap watches" and moved.id != spam.id
    assert isinstance(list(account.fetch(ids=[spam]))[0], ErrorItemNotFound)

    assert account.bulk_mark_as_junk([kept], is_junk=True, move_item=False) == []  # no MovedItemId
    assert [m.subject for m in account.inbox.all()] == ["Lunch?"]  # marked, not moved

    [(back_id, _)] = account.bulk_mark_as_junk([(junk_id, junk_key)], is_junk=False, move_item=True)
    assert sorted(m.subject for m in account.inbox.all()) == ["Cheap watches", "Lunch?"]
    account.junk.refresh()
    assert account.junk.total_count == 0 and back_id != junk_id


def test_another_mailboxs_item_is_refused_and_stays(server, server_store, mailbox):
    bob = new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob")
    inbox = server_store.folders.distinguished(bob, "inbox")
    item = server_store.items.create(bob, inbox.id, NewItem(props={"ItemClass": "IPM.Note", "Subject": "Bob's"}))
    request = envelope(f'<m:MarkAsJunk IsJunk="true" MoveItem="true"><m:ItemIds>'
                       f'<t:ItemId Id="{ids.item_id(bob.guid, item.id)}"/></m:ItemIds></m:MarkAsJunk>')
    root = parse(post(server.ews_url, request, mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorAccessDenied"] and root.find(".//m:MovedItemId", NS) is None
    assert server_store.items.get(bob, item.id).folder_id == inbox.id


def test_marking_as_junk_blocks_the_sender_and_not_junk_unblocks_it(server, server_store, mailbox, account):
    bob = new_mailbox(server_store, mailbox.address.split("@", 1)[1], "bob")
    sender = make_account(server, bob.address)

    def send(subject: str) -> None:
        Message(account=sender, subject=subject, body="Hi",
                to_recipients=[Mailbox(email_address=mailbox.address)]).send()
        settle_all()

    send("First")
    [first] = account.inbox.all()
    account.bulk_mark_as_junk([first], is_junk=True, move_item=False)
    send("Second")
    assert [m.subject for m in account.junk.all()] == ["Second"]
    [second] = account.junk.all()
    account.bulk_mark_as_junk([second], is_junk=False, move_item=True)
    send("Third")
    assert sorted(m.subject for m in account.inbox.all()) == ["First", "Second", "Third"]
    assert list(account.junk.all()) == []
