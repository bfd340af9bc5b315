"""The first-day flows of a mail client through exchangelib, on both back ends."""

from exchangelib import Mailbox, Message

from .soap import codes, envelope, parse, post


def test_version_and_distinguished_folders(account):
    assert account.version.api_version == "Exchange2016"
    assert account.version.build.major_version == 15
    names = {f.name for f in account.root.walk()}
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Calendar", "Contacts", "Tasks"} <= names
    assert account.inbox.total_count == 0


def test_save_and_read_back_a_message(account):
    msg = Message(account=account, folder=account.drafts, subject="Quarterly numbers", body="See attached",
                  to_recipients=[Mailbox(email_address="bob@example.org", name="Bob")])
    msg.save()
    assert msg.id and msg.changekey
    fetched = account.drafts.get(id=msg.id)
    assert fetched.subject == "Quarterly numbers"
    assert fetched.body == "See attached"
    assert [r.email_address for r in fetched.to_recipients] == ["bob@example.org"]
    assert fetched.display_to == "Bob"
    assert account.drafts.filter(subject="Quarterly numbers").count() == 1
    assert account.drafts.filter(subject="nothing like it").count() == 0


def test_unauthenticated_post_gets_a_basic_challenge(server):
    response = post(server.ews_url, envelope("<m:GetFolder/>"), None, None)
    assert response.status_code == 401
    assert "basic" in response.headers["WWW-Authenticate"].lower()


def test_wrong_password_is_refused(server, mailbox):
    response = post(server.ews_url, envelope("<m:GetFolder/>"), mailbox.address, "wrong")
    assert response.status_code == 401


def test_unknown_folder_id_is_a_per_item_error(server, mailbox):
    from .conftest import PASSWORD

    body = ('<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>'
            '<t:DistinguishedFolderId Id="inbox"/><t:FolderId Id="garbage"/>'
            '<t:DistinguishedFolderId Id="archiveroot"/></m:FolderIds></m:GetFolder>')
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorFolderNotFound"]
