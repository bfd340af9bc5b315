"""UpdateItem, DeleteItem, MoveItem, CopyItem, SendItem and MarkAllItemsAsRead, through exchangelib
where it can and raw SOAP for conflicts and errors, on both back ends."""

from __future__ import annotations

import uuid

from exchangelib import HTMLBody, Mailbox, Message
from exchangelib.extended_properties import ExtendedProperty

from mailroom.store import ids
from mailroom.store.model import NewItem

from .conftest import PASSWORD, make_account, new_mailbox
from .soap import NS, codes, envelope, parse, post


class Flavour(ExtendedProperty):
    property_set_id = "c11ff724-aa03-4555-9952-8fa248a11c3e"
    property_name = "Flavour"
    property_type = "String"


def _soap(server, mailbox, body, version="Exchange2016"):
    return parse(post(server.ews_url, envelope(body, version), mailbox.address, PASSWORD))


def _counts(folder) -> tuple[int, int]:
    """The folder's (total, unread) as the server reports them now."""
    folder.refresh()
    return folder.total_count, folder.unread_count


def _draft(account, subject="Draft", **extra) -> Message:
    msg = Message(account=account, folder=account.drafts, subject=subject, body="Hello", **extra)
    msg.save()
    return msg


def _in_inbox(store, mailbox, subjects, is_read=False) -> list[int]:
    inbox = store.folders.distinguished(mailbox, "inbox")
    return [store.items.create(mailbox, inbox.id, NewItem(props={"Subject": s, "IsRead": is_read})).id
            for s in subjects]


def _set_subject(item_id, change_key, subject, resolution="AutoResolve", disposition=' MessageDisposition="SaveOnly"'):
    key = f' ChangeKey="{change_key}"' if change_key is not None else ""
    return (f'<m:UpdateItem ConflictResolution="{resolution}"{disposition}><m:ItemChanges>'
            f'<t:ItemChange><t:ItemId Id="{item_id}"{key}/><t:Updates><t:SetItemField>'
            f'<t:FieldURI FieldURI="item:Subject"/><t:Message><t:Subject>{subject}</t:Subject></t:Message>'
            "</t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>")


# -- UpdateItem --------------------------------------------------------------------------------------
def test_update_fields_through_exchangelib(account):
    msg = _draft(account, to_recipients=[Mailbox(email_address="bob@example.org", name="Bob")])
    old_key = msg.changekey
    msg.subject = "Renamed"
    msg.body = HTMLBody("<p>New <b>body</b></p>")
    msg.categories = ["Red", "Blue"]
    msg.importance = "High"
    msg.is_read = False
    msg.to_recipients = [Mailbox(email_address="carol@example.org", name="Carol"),
                         Mailbox(email_address="dave@example.org", name="Dave")]
    msg.save(update_fields=["subject", "body", "categories", "importance", "is_read", "to_recipients"])
    assert msg.changekey != old_key
    fetched = account.drafts.get(id=msg.id)
    assert fetched.changekey == msg.changekey
    assert fetched.subject == "Renamed"
    assert "<b>body</b>" in fetched.body and isinstance(fetched.body, HTMLBody)
    assert fetched.categories == ["Red", "Blue"]
    assert fetched.importance == "High"
    assert fetched.is_read is False
    assert [r.email_address for r in fetched.to_recipients] == ["carol@example.org", "dave@example.org"]
    assert fetched.display_to == "Carol; Dave"
    assert fetched.conversation_topic == "Renamed"
    assert _counts(account.drafts) == (1, 1)

    fetched.categories = None  # exchangelib sends DeleteItemField for an emptied field
    fetched.save(update_fields=["categories"])
    assert account.drafts.get(id=msg.id).categories is None


def test_extended_property_set_and_delete(account):
    Message.register("flavour", Flavour)
    try:
        msg = _draft(account)
        msg.flavour = "vanilla"
        msg.save(update_fields=["flavour"])
        assert account.drafts.get(id=msg.id).flavour == "vanilla"
        msg.flavour = None
        msg.save(update_fields=["flavour"])
        assert account.drafts.get(id=msg.id).flavour is None
    finally:
        Message.deregister("flavour")


def test_full_save_of_a_fetched_draft(account):
    """exchangelib's save() without update_fields sets or deletes every writable field (MimeContent
    too: deleted when the object never had it, set when it was fetched)."""
    msg = _draft(account, subject="Whole", categories=["Red"])
    msg.subject, msg.categories = "Whole", None
    msg.save()
    fetched = account.drafts.get(subject="Whole")
    assert fetched.categories is None and fetched.body == "Hello"
    fetched.subject = "Whole again"
    fetched.save()
    again = account.drafts.get(id=fetched.id)
    assert again.subject == "Whole again" and again.body == "Hello"


def test_setting_is_read_keeps_the_stored_mime(account, server_store, mailbox):
    raw = (b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: Original\r\n"
           b"Message-ID: <keep-" + uuid.uuid4().hex.encode() + b"@example.org>\r\nX-Custom: kept\r\n\r\nBody\r\n")
    inbox = server_store.folders.distinguished(mailbox, "inbox")
    from mailroom.content import mime

    parsed = mime.parse_message(raw)
    stored = server_store.items.create(mailbox, inbox.id, NewItem(props=parsed.props, body=parsed.body, mime=raw))
    item = account.inbox.get(subject="Original")
    item.is_read = True
    item.save(update_fields=["is_read"])
    assert server_store.items.mime(mailbox, stored.id) == raw
    assert _counts(account.inbox) == (1, 0)
    item.subject = "Changed"
    item.save(update_fields=["subject"])
    assert server_store.items.mime(mailbox, stored.id) is None  # rebuilt from the properties from now on
    assert b"Subject: Changed" in account.inbox.get(id=item.id).mime_content


def test_changekey_conflicts(server, account, mailbox):
    msg = _draft(account, subject="Versioned")
    stale = msg.changekey
    msg.subject = "Second"
    msg.save(update_fields=["subject"])

    for resolution in ("NeverOverwrite", "AutoResolve"):
        root = _soap(server, mailbox, _set_subject(msg.id, stale, "Lost", resolution))
        assert codes(root) == ["ErrorIrresolvableConflict"]
    assert account.drafts.get(id=msg.id).subject == "Second"

    root = _soap(server, mailbox, _set_subject(msg.id, stale, "Forced", "AlwaysOverwrite"))
    assert codes(root) == ["NoError"]
    new_key = root.find(".//m:Items/t:Message/t:ItemId", NS).get("ChangeKey")
    assert root.find(".//m:ConflictResults/t:Count", NS).text == "0"
    fetched = account.drafts.get(id=msg.id)
    assert fetched.subject == "Forced" and fetched.changekey == new_key

    assert codes(_soap(server, mailbox, _set_subject(msg.id, "bm90IGEga2V5", "X"))) == ["ErrorInvalidChangeKey"]
    no_key = _set_subject(msg.id, None, "X", "NeverOverwrite")
    assert codes(_soap(server, mailbox, no_key)) == ["ErrorChangeKeyRequired"]
    assert codes(_soap(server, mailbox, _set_subject(msg.id, new_key, "X", disposition=""))) == [
        "ErrorMessageDispositionRequired"]
    assert codes(_soap(server, mailbox, _set_subject(msg.id, new_key, "Fresh", "NeverOverwrite"))) == ["NoError"]
    assert account.drafts.get(id=msg.id).subject == "Fresh"


def test_append_and_invalid_changes(server, account, mailbox):
    msg = _draft(account, to_recipients=[Mailbox(email_address="bob@example.org", name="Bob")])

    def change(update):
        return (f'<m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly"><m:ItemChanges>'
                f'<t:ItemChange><t:ItemId Id="{msg.id}"/><t:Updates>{update}</t:Updates></t:ItemChange>'
                "</m:ItemChanges></m:UpdateItem>")

    append = ('<t:AppendToItemField><t:FieldURI FieldURI="message:ToRecipients"/><t:Message><t:ToRecipients>'
              "<t:Mailbox><t:Name>Eve</t:Name><t:EmailAddress>eve@example.org</t:EmailAddress></t:Mailbox>"
              "</t:ToRecipients></t:Message></t:AppendToItemField>"
              '<t:AppendToItemField><t:FieldURI FieldURI="item:Body"/><t:Message>'
              '<t:Body BodyType="Text"> and more</t:Body></t:Message></t:AppendToItemField>')
    assert codes(_soap(server, mailbox, change(append))) == ["NoError"]
    fetched = account.drafts.get(id=msg.id)
    assert [r.email_address for r in fetched.to_recipients] == ["bob@example.org", "eve@example.org"]
    assert fetched.display_to == "Bob; Eve"
    assert fetched.body == "Hello and more"

    bad = [
        ('<t:AppendToItemField><t:FieldURI FieldURI="item:Subject"/><t:Message><t:Subject>x</t:Subject>'
         "</t:Message></t:AppendToItemField>", "ErrorInvalidPropertyAppend"),
        ('<t:SetItemField><t:FieldURI FieldURI="item:DateTimeCreated"/><t:Message>'
         "<t:DateTimeCreated>2020-01-01T00:00:00Z</t:DateTimeCreated></t:Message></t:SetItemField>",
         "ErrorInvalidPropertySet"),
        ('<t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:Message><t:Sensitivity>Private</t:Sensitivity>'
         "</t:Message></t:SetItemField>", "ErrorUpdatePropertyMismatch"),
        ('<t:SetItemField><t:FieldURI FieldURI="contacts:JobTitle"/><t:Contact><t:JobTitle>Boss</t:JobTitle>'
         "</t:Contact></t:SetItemField>", "ErrorInvalidPropertySet"),
        ('<t:DeleteItemField><t:FieldURI FieldURI="item:Size"/></t:DeleteItemField>', "ErrorInvalidPropertyDelete"),
        ('<t:AppendToItemField><t:ExtendedFieldURI PropertyTag="0x3A45" PropertyType="String"/><t:Message>'
         '<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x3A45" PropertyType="String"/><t:Value>Dr</t:Value>'
         "</t:ExtendedProperty></t:Message></t:AppendToItemField>", "ErrorInvalidPropertyAppend"),
    ]
    for update, code in bad:
        assert codes(_soap(server, mailbox, change(update))) == [code], update
    assert account.drafts.get(id=msg.id).changekey == fetched.changekey  # nothing was written


def test_update_batch_mixes_success_and_failure(server, account, mailbox, server_store):
    msg = _draft(account, subject="Good")
    other = new_mailbox(server_store, mailbox.address.split("@")[1], "mallory")
    foreign = ids.item_id(other.guid, _in_inbox(server_store, other, ["Private"])[0])
    unknown = ids.item_id(mailbox.guid, 10**9)
    changes = "".join(
        f'<t:ItemChange><t:ItemId Id="{item_id}"/><t:Updates><t:SetItemField><t:FieldURI FieldURI="item:Subject"/>'
        "<t:Message><t:Subject>Batch</t:Subject></t:Message></t:SetItemField></t:Updates></t:ItemChange>"
        for item_id in (msg.id, "garbage!", unknown, foreign))
    body = (f'<m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly">'
            f"<m:ItemChanges>{changes}</m:ItemChanges></m:UpdateItem>")
    root = _soap(server, mailbox, body)
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorItemNotFound", "ErrorAccessDenied"]
    assert account.drafts.get(id=msg.id).subject == "Batch"


def test_contact_indexed_fields(account):
    from exchangelib import Contact
    from exchangelib.indexed_properties import PhoneNumber, PhysicalAddress

    contact = Contact(account=account, folder=account.contacts, display_name="Ann Lee", given_name="Ann", surname="Lee",
                      phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number="123")])
    contact.save()
    contact.phone_numbers = [PhoneNumber(label="MobilePhone", phone_number="555")]
    contact.physical_addresses = [PhysicalAddress(label="Home", street="1 Main St", city="Springfield")]
    contact.job_title = "Engineer"
    contact.save(update_fields=["phone_numbers", "physical_addresses", "job_title"])
    fetched = account.contacts.get(id=contact.id)
    assert [(p.label, p.phone_number) for p in fetched.phone_numbers] == [("MobilePhone", "555")]
    assert [(a.label, a.street, a.city, a.zipcode) for a in fetched.physical_addresses] == [
        ("Home", "1 Main St", "Springfield", None)]
    assert fetched.job_title == "Engineer"


# -- DeleteItem ---------------------------------------------------------------------------------------
def test_delete_in_all_three_modes(account, mailbox, server_store):
    hard, soft, trash = _in_inbox(server_store, mailbox, ["Hard", "Soft", "Trash"])
    assert _counts(account.inbox) == (3, 3)
    account.inbox.get(subject="Hard").delete()
    account.inbox.get(subject="Soft").soft_delete()
    account.inbox.get(subject="Trash").move_to_trash()
    assert _counts(account.inbox) == (0, 0)
    assert [i.subject for i in account.trash.all()] == ["Trash"]
    assert _counts(account.trash) == (1, 1)
    assert [i.subject for i in account.recoverable_items_deletions.all()] == ["Soft"]
    for old in (hard, soft, trash):
        assert server_store.items.get_many(mailbox, [old])[0] is None

    account.trash.get(subject="Trash").move_to_trash()  # already in Deleted Items: soft-deleted
    assert _counts(account.trash) == (0, 0)
    assert sorted(i.subject for i in account.recoverable_items_deletions.all()) == ["Soft", "Trash"]
    account.recoverable_items_deletions.get(subject="Soft").soft_delete()  # already there: gone
    assert [i.subject for i in account.recoverable_items_deletions.all()] == ["Trash"]


def test_delete_batch_and_attributes(server, mailbox, server_store):
    good, = _in_inbox(server_store, mailbox, ["Doomed"])
    other = new_mailbox(server_store, mailbox.address.split("@")[1], "trent")
    foreign = ids.item_id(other.guid, _in_inbox(server_store, other, ["Theirs"])[0])
    calendar = server_store.folders.distinguished(mailbox, "calendar")
    meeting = server_store.items.create(mailbox, calendar.id, NewItem(props={"ItemClass": "IPM.Appointment",
                                                                             "Subject": "Standup"})).id
    item_ids = "".join(f'<t:ItemId Id="{i}"/>' for i in (
        ids.item_id(mailbox.guid, good), "garbage!", ids.item_id(mailbox.guid, 10**9), foreign,
        ids.item_id(mailbox.guid, meeting)))
    body = f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{item_ids}</m:ItemIds></m:DeleteItem>'
    root = _soap(server, mailbox, body)
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorItemNotFound", "ErrorAccessDenied",
                           "ErrorSendMeetingCancellationsRequired"]
    assert server_store.items.get_many(other, [ids.decode(foreign).row_id])[0] is not None
    root = _soap(server, mailbox, '<m:DeleteItem DeleteType="Shred"><m:ItemIds><t:ItemId Id="x"/></m:ItemIds>'
                                  "</m:DeleteItem>")
    assert root.find(".//faultcode") is not None


# -- MoveItem / CopyItem ------------------------------------------------------------------------------
def test_move_returns_a_new_id_and_the_old_one_is_gone(server, account, mailbox):
    msg = _draft(account, subject="Traveller")
    old_id = msg.id
    msg.move(account.inbox)
    assert msg.id != old_id
    fetched = account.inbox.get(id=msg.id)
    assert fetched.subject == "Traveller" and fetched.body == "Hello"
    assert _counts(account.drafts)[0] == 0 and _counts(account.inbox)[0] == 1
    root = _soap(server, mailbox, '<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
                                  f'<m:ItemIds><t:ItemId Id="{old_id}"/></m:ItemIds></m:GetItem>')
    assert codes(root) == ["ErrorItemNotFound"]


def test_copy_keeps_the_original(account):
    msg = _draft(account, subject="Twin", categories=["Green"])
    copied = msg.copy(account.inbox)
    assert copied[0] != msg.id
    assert account.drafts.get(id=msg.id).subject == "Twin"
    twin = account.inbox.get(id=copied[0])
    assert twin.subject == "Twin" and twin.categories == ["Green"]
    assert _counts(account.drafts)[0] == 1 and _counts(account.inbox)[0] == 1


def test_move_and_copy_errors(server, mailbox, server_store):
    first, second = _in_inbox(server_store, mailbox, ["One", "Two"])
    one, two = ids.item_id(mailbox.guid, first), ids.item_id(mailbox.guid, second)
    missing = ids.folder_id(mailbox.guid, 10**9)
    root = _soap(server, mailbox, f'<m:MoveItem><m:ToFolderId><t:FolderId Id="{missing}"/></m:ToFolderId>'
                                  f'<m:ItemIds><t:ItemId Id="{one}"/></m:ItemIds></m:MoveItem>')
    assert codes(root) == ["ErrorToFolderNotFound"]
    root = _soap(server, mailbox, '<m:CopyItem><m:ToFolderId><t:DistinguishedFolderId Id="drafts"/></m:ToFolderId>'
                                  f'<m:ItemIds><t:ItemId Id="{one}"/><t:ItemId Id="garbage!"/><t:ItemId Id="{two}"/>'
                                  "</m:ItemIds><m:ReturnNewItemIds>false</m:ReturnNewItemIds></m:CopyItem>")
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "NoError"]
    assert root.findall(".//m:Items/*", NS) == []
    drafts = server_store.folders.distinguished(mailbox, "drafts")
    assert drafts.total_count == 2


# -- SendItem -----------------------------------------------------------------------------------------
def test_send_a_draft_to_a_local_mailbox(server, account, mailbox, server_store):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob Example")
    msg = _draft(account, subject="For Bob", to_recipients=[Mailbox(email_address=bob.address)])
    msg.send()  # SendItem, SaveItemToFolder with Sent Items
    server.settle()
    assert _counts(account.drafts)[0] == 0
    sent = account.sent.get(subject="For Bob")
    assert sent.is_draft is False and sent.author.email_address == mailbox.address
    arrived = make_account(server, bob.address).inbox.get(subject="For Bob")
    assert arrived.body.strip() == "Hello" and arrived.is_read is False


def test_send_without_saving_and_via_update(server, account, mailbox, server_store):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob Example")
    first = _draft(account, subject="Unsaved", to_recipients=[Mailbox(email_address=bob.address)])
    root = _soap(server, mailbox, f'<m:SendItem SaveItemToFolder="false"><m:ItemIds><t:ItemId Id="{first.id}" '
                                  f'ChangeKey="{first.changekey}"/></m:ItemIds></m:SendItem>')
    assert codes(root) == ["NoError"]
    assert _counts(account.sent)[0] == 0 and _counts(account.drafts)[0] == 0  # sent, then deleted

    second = _draft(account, subject="Edited then sent")
    second.to_recipients = [Mailbox(email_address=bob.address)]
    second.send_and_save(update_fields=["to_recipients"])  # UpdateItem with SendAndSaveCopy
    server.settle()
    bob_inbox = make_account(server, bob.address).inbox
    assert sorted(i.subject for i in bob_inbox.all()) == ["Edited then sent", "Unsaved"]
    assert [i.subject for i in account.sent.all()] == ["Edited then sent"]


def test_send_errors(server, account, mailbox):
    stale = _draft(account, subject="Stale", to_recipients=[Mailbox(email_address="x@example.org")])
    old_key = stale.changekey
    stale.subject = "Stale 2"
    stale.save(update_fields=["subject"])
    nobody = _draft(account, subject="Nobody")
    body = (f'<m:SendItem SaveItemToFolder="true"><m:ItemIds><t:ItemId Id="{stale.id}" ChangeKey="{old_key}"/>'
            f'<t:ItemId Id="{nobody.id}"/></m:ItemIds></m:SendItem>')
    assert codes(_soap(server, mailbox, body)) == ["ErrorStaleObject", "ErrorInvalidRecipients"]
    assert _counts(account.drafts)[0] == 2


# -- MarkAllItemsAsRead -------------------------------------------------------------------------------
def test_mark_all_items_as_read(server, account, mailbox, server_store):
    _in_inbox(server_store, mailbox, ["a", "b", "c"])
    assert _counts(account.inbox) == (3, 3)

    def mark(flag, version="Exchange2016"):
        return _soap(server, mailbox, f"<m:MarkAllItemsAsRead><m:ReadFlag>{flag}</m:ReadFlag>"
                                      "<m:SuppressReadReceipts>true</m:SuppressReadReceipts><m:FolderIds>"
                                      '<t:DistinguishedFolderId Id="inbox"/><t:FolderId Id="garbage!"/>'
                                      "</m:FolderIds></m:MarkAllItemsAsRead>", version)

    assert codes(mark("true")) == ["NoError", "ErrorInvalidIdMalformed"]
    assert _counts(account.inbox) == (3, 0)
    assert all(i.is_read for i in account.inbox.all())
    assert codes(mark("false")) == ["NoError", "ErrorInvalidIdMalformed"]
    assert _counts(account.inbox) == (3, 3)
    assert mark("true", "Exchange2010_SP2").find(".//faultcode") is not None
