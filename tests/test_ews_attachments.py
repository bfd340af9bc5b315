"""Attachments and ExportItems/UploadItems on both back ends: exchangelib for what clients do,
raw SOAP for the error cases (one response message per id, in order, nothing stored on failure)."""

import base64

from exchangelib import ExtendedProperty, FileAttachment, HTMLBody, ItemAttachment, Message
from exchangelib import Mailbox as EWSMailbox

from mailroom.store import ids

from .conftest import PASSWORD, make_account, new_mailbox
from .soap import NS, codes, envelope, parse, post

PDF = b"%PDF-1.4 binary \x00\xff"


def _soap(server, mailbox, body, version="Exchange2016"):
    return parse(post(server.ews_url, envelope(body, version), mailbox.address, PASSWORD))


def _draft(account, subject="With files", **fields):
    msg = Message(account=account, folder=account.drafts, subject=subject, body="see attached", **fields)
    msg.save()
    return msg


def _get_attachments(ids_xml, shape=""):
    return f"<m:GetAttachment>{shape}<m:AttachmentIds>{ids_xml}</m:AttachmentIds></m:GetAttachment>"


def test_file_attachment_attach_fetch_detach(account):
    msg = _draft(account)
    before = msg.changekey
    att = FileAttachment(name="report.pdf", content=PDF, content_type="application/pdf")
    msg.attach(att)
    assert att.attachment_id.id and msg.changekey != before
    fetched = account.drafts.get(id=msg.id)
    assert fetched.changekey == msg.changekey
    assert fetched.has_attachments is True
    assert fetched.size > len(PDF)
    assert [(a.name, a.content_type, a.size, a.is_inline) for a in fetched.attachments] == [
        ("report.pdf", "application/pdf", len(PDF), False)]
    assert fetched.attachments[0].content == PDF
    msg.detach(att)
    after = account.drafts.get(id=msg.id)
    assert after.has_attachments is False and after.attachments == []
    assert after.changekey != fetched.changekey


def test_attachments_saved_with_the_item_are_listed_by_getitem(account):
    msg = Message(account=account, folder=account.drafts, subject="Logo inside",
                  body=HTMLBody('<html><body><img src="cid:logo@example"></body></html>'))
    msg.attach([FileAttachment(name="logo.png", content=b"\x89PNG\r\n", content_id="logo@example", is_inline=True),
                FileAttachment(name="notes.txt", content=b"plain notes")])
    msg.save()
    fetched = account.drafts.get(id=msg.id)
    found = {a.name: a for a in fetched.attachments}
    assert set(found) == {"logo.png", "notes.txt"}
    logo = found["logo.png"]
    assert (logo.is_inline, logo.content_id, logo.size) == (True, "logo@example", 6)
    assert found["notes.txt"].is_inline is False
    assert found["notes.txt"].content == b"plain notes"
    assert fetched.has_attachments is True


def test_only_inline_attachments_do_not_make_has_attachments(account):
    msg = _draft(account, "Inline only")
    msg.attach(FileAttachment(name="sig.png", content=b"png", content_id="sig", is_inline=True))
    assert account.drafts.get(id=msg.id).has_attachments is False


def test_item_attachment_round_trip(account):
    msg = _draft(account, "Forwarding")
    inner = Message(subject="The original", body=HTMLBody("<p>inner <b>body</b></p>"),
                    to_recipients=[EWSMailbox(email_address="carol@example.org", name="Carol")])
    inner.attach(FileAttachment(name="inner.txt", content=b"nested file"))
    msg.attach(ItemAttachment(name="Original message", item=inner))
    fetched = account.drafts.get(id=msg.id)
    assert fetched.has_attachments is True
    (att,) = fetched.attachments
    assert isinstance(att, ItemAttachment) and att.name == "Original message"
    item = att.item
    assert item.subject == "The original"
    assert "inner <b>body</b>" in item.body
    assert [(r.name, r.email_address) for r in item.to_recipients] == [("Carol", "carol@example.org")]
    assert item.mime_content and b"Subject: The original" in item.mime_content
    (nested,) = item.attachments
    assert (nested.name, nested.content) == ("inner.txt", b"nested file")


def test_getattachment_shape_body_type_and_mime(server, account, mailbox):
    msg = _draft(account, "Shape")
    inner = Message(subject="Shaped", body=HTMLBody("<html><body><p>Hello <b>there</b></p></body></html>"))
    att = ItemAttachment(name="shaped", item=inner)
    msg.attach(att)
    shape = "<m:AttachmentShape><t:BodyType>Text</t:BodyType></m:AttachmentShape>"
    root = _soap(server, mailbox, _get_attachments(f'<t:AttachmentId Id="{att.attachment_id.id}"/>', shape))
    body = root.find(".//m:Attachments/t:ItemAttachment/t:Message/t:Body", NS)
    assert body.get("BodyType") == "Text" and "Hello there" in body.text
    assert root.find(".//t:Message/t:ItemId", NS) is None
    assert root.find(".//t:Message/t:MimeContent", NS) is None
    shape = "<m:AttachmentShape><t:IncludeMimeContent>true</t:IncludeMimeContent></m:AttachmentShape>"
    root = _soap(server, mailbox, _get_attachments(f'<t:AttachmentId Id="{att.attachment_id.id}"/>', shape))
    mime = base64.b64decode(root.find(".//t:Message/t:MimeContent", NS).text)
    assert b"Subject: Shaped" in mime and b"multipart/alternative" in mime


def test_attachments_follow_a_moved_item(server, server_store, account, mailbox):
    msg = _draft(account, "Moving")
    att = FileAttachment(name="a.bin", content=b"abc")
    msg.attach(att)
    row = ids.decode(msg.id).row_id
    moved = server_store.items.move(mailbox, row, server_store.folders.distinguished(mailbox, "inbox").id)
    fetched = account.inbox.get(id=ids.item_id(mailbox.guid, moved.id))
    (found,) = fetched.attachments
    assert found.attachment_id.id != att.attachment_id.id
    assert found.content == b"abc"
    root = _soap(server, mailbox, _get_attachments(f'<t:AttachmentId Id="{att.attachment_id.id}"/>'))
    assert codes(root) == ["ErrorItemNotFound"]


def test_attachment_errors_are_per_id_and_in_order(server, server_store, account, mailbox):
    msg = _draft(account, "Errors")
    keep, gone = FileAttachment(name="keep.txt", content=b"k"), FileAttachment(name="gone.txt", content=b"g")
    msg.attach([keep, gone])
    gone_id = gone.attachment_id.id
    msg.detach(gone)
    other = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    theirs = _draft(make_account(server, other.address), "Bob's")
    their_att = FileAttachment(name="secret.txt", content=b"s")
    theirs.attach(their_att)
    request = "".join(f'<t:AttachmentId Id="{i}"/>' for i in (
        keep.attachment_id.id, "garbage", msg.id, gone_id, their_att.attachment_id.id))
    root = _soap(server, mailbox, _get_attachments(request))
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorInvalidIdMalformed",
                           "ErrorItemNotFound", "ErrorAccessDenied"]
    assert base64.b64decode(root.find(".//t:FileAttachment/t:Content", NS).text) == b"k"
    root = _soap(server, mailbox, "<m:DeleteAttachment><m:AttachmentIds>"
                 f'<t:AttachmentId Id="{gone_id}"/><t:AttachmentId Id="{keep.attachment_id.id}"/>'
                 "</m:AttachmentIds></m:DeleteAttachment>")
    assert codes(root) == ["ErrorItemNotFound", "NoError"]
    root_id = root.find(".//m:RootItemId", NS)
    assert root_id.get("RootItemId") == msg.id and root_id.get("RootItemChangeKey") != msg.changekey


def test_createattachment_reports_each_attachment(server, server_store, account, mailbox):
    msg = _draft(account, "Create errors")
    body = (f'<m:CreateAttachment><m:ParentItemId Id="{msg.id}" ChangeKey="{msg.changekey}"/><m:Attachments>'
            "<t:FileAttachment><t:Name>ok.txt</t:Name><t:Content>b2s=</t:Content></t:FileAttachment>"
            "<t:FileAttachment><t:Name>empty.txt</t:Name></t:FileAttachment>"
            "<t:ItemAttachment><t:Name>no item</t:Name></t:ItemAttachment>"
            "<t:FileAttachment><t:Name>two.txt</t:Name><t:Content>dHdv</t:Content></t:FileAttachment>"
            "</m:Attachments></m:CreateAttachment>")
    root = _soap(server, mailbox, body)
    assert codes(root) == ["NoError", "ErrorRequiredPropertyMissing", "ErrorMissingItemForCreateItemAttachment",
                           "NoError"]
    created = root.findall(".//t:FileAttachment/t:AttachmentId", NS)
    assert all(a.get("RootItemId") == msg.id for a in created)
    assert created[0].get("RootItemChangeKey") != created[1].get("RootItemChangeKey")
    fetched = account.drafts.get(id=msg.id)
    assert fetched.changekey == created[1].get("RootItemChangeKey")
    assert sorted(a.name for a in fetched.attachments) == ["ok.txt", "two.txt"]
    root = _soap(server, mailbox, body.replace(msg.id, "garbage", 1))
    assert set(codes(root)) == {"ErrorInvalidIdMalformed"}


class Flag(ExtendedProperty):
    property_set_id = "aa6f1b0e-2c37-4b43-a2a4-8e6c0c71d0a1"
    property_name = "Flag"
    property_type = "Integer"


def test_export_upload_round_trip(account):
    Message.register("flag", Flag)
    try:
        msg = Message(account=account, folder=account.drafts, subject="Exported", body=HTMLBody("<p>Body ü</p>"),
                      to_recipients=[EWSMailbox(email_address="to@example.org", name="To Person")],
                      cc_recipients=["cc@example.org"], flag=42)
        msg.save()
        msg.attach(FileAttachment(name="data.bin", content=PDF))
        msg.attach(ItemAttachment(name="inner", item=Message(subject="Inner item", body="inner text")))
        (data,) = account.export([account.drafts.get(id=msg.id)])
        (new_id, new_key), = account.upload([(account.inbox, data)])
        assert new_id != msg.id
        copy = account.inbox.get(id=new_id)
        assert copy.changekey == new_key
        assert copy.subject == "Exported" and "<p>Body ü</p>" in copy.body
        assert [(r.name, r.email_address) for r in copy.to_recipients] == [("To Person", "to@example.org")]
        assert [r.email_address for r in copy.cc_recipients] == ["cc@example.org"]
        assert copy.flag == 42
        files = {a.name: a for a in copy.attachments}
        assert files["data.bin"].content == PDF
        assert files["inner"].item.subject == "Inner item"
        msg.subject = "Changed since"
        msg.save(update_fields=["subject"])
        (same_id, changed_key), = account.upload([(account.drafts, ((msg.id, msg.changekey), False, data))])
        assert same_id == msg.id and changed_key != msg.changekey
        restored = account.drafts.get(id=msg.id)
        assert restored.subject == "Exported" and restored.flag == 42
        assert sorted(a.name for a in restored.attachments) == ["data.bin", "inner"]
    finally:
        Message.deregister("flag")


def _upload(folder_id, data, action="CreateNew", item_id=""):
    item = f'<t:ItemId Id="{item_id}"/>' if item_id else ""
    return (f'<t:Item CreateAction="{action}"><t:ParentFolderId Id="{folder_id}"/>{item}'
            f"<t:Data>{data}</t:Data></t:Item>")


def test_upload_errors_store_nothing(server, account, mailbox):
    msg = _draft(account, "Source")
    (data,) = account.export([msg])
    drafts, inbox = account.drafts.id, account.inbox.id
    forged = base64.b64encode(b'mailroom-item/1\n{"props":{"ToRecipients":"<not xml"},"body":null,"mime":null,'
                              b'"extended":[],"attachments":[]}').decode()
    items = "".join([
        _upload(drafts, base64.b64encode(b"not an export").decode()),
        _upload(drafts, "***"),
        _upload(drafts, forged),
        _upload(inbox, data, "Update", msg.id),
        _upload(drafts, data, "Update"),
        _upload(drafts, data, "UpdateOrCreate", msg.id),
        _upload(inbox, data, "UpdateOrCreate", msg.id),
    ])
    before = account.drafts.refresh().total_count
    root = _soap(server, mailbox, f"<m:UploadItems><m:Items>{items}</m:Items></m:UploadItems>")
    assert codes(root) == ["ErrorCorruptData", "ErrorCorruptData", "ErrorCorruptData", "ErrorItemNotFound",
                           "ErrorItemNotFound", "NoError", "NoError"]
    updated, created = [e.get("Id") for e in root.findall(".//m:ItemId", NS)]
    assert updated == msg.id and created != msg.id
    assert account.drafts.refresh().total_count == before
    assert account.inbox.get(id=created).subject == "Source"


def test_export_errors_are_per_id(server, account, mailbox):
    msg = _draft(account, "Export me")
    ids_xml = (f'<t:ItemId Id="{msg.id}"/><t:ItemId Id="garbage"/>'
               f'<t:ItemId Id="{msg.id}" ChangeKey="not-a-changekey"/>')
    root = _soap(server, mailbox, f"<m:ExportItems><m:ItemIds>{ids_xml}</m:ItemIds></m:ExportItems>")
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorInvalidChangeKey"]
    assert root.find(".//m:ExportItemsResponseMessage/m:ItemId", NS).get("Id") == msg.id
    assert base64.b64decode(root.find(".//m:Data", NS).text).startswith(b"mailroom-item/")
