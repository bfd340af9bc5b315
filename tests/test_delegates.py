"""Delegates ([MS-OXWSDLGM]) and folder permissions: the owner grants levels on its folders through
AddDelegate/UpdateDelegate/RemoveDelegate or a folder's PermissionSet; a delegate reaches exactly
those folders; mail a delegate sends for the owner goes "on behalf of"."""

from __future__ import annotations

from datetime import timedelta

import pytest
from exchangelib import DELEGATE, UTC, Account, CalendarItem, Configuration, Credentials, EWSDateTime, Message
from exchangelib import Mailbox as EwsMailbox
from exchangelib.errors import ErrorAccessDenied, ErrorInvalidSubscriptionRequest
from exchangelib.transport import BASIC

from mailroom.access.permissions import Right, level_rights
from mailroom.store import ids
from mailroom.store.model import Mailbox, NewItem

from .conftest import PASSWORD, make_account, new_domain, new_mailbox
from .soap import NS, codes, envelope, parse, post


def call(server, caller: Mailbox, body: str, version: str = "Exchange2010_SP2"):  # noqa: ANN001, ANN201
    response = post(server.ews_url, envelope(body, version=version), caller.address, PASSWORD)
    assert response.status_code == 200, response.text
    return parse(response)


def user_id(address: str) -> str:
    return f"<t:UserId><t:PrimarySmtpAddress>{address}</t:PrimarySmtpAddress></t:UserId>"


def add(owner: Mailbox, delegate: str, levels: dict[str, str], extra: str = "", mailbox: str | None = None) -> str:
    permissions = "".join(f"<t:{folder}FolderPermissionLevel>{level}</t:{folder}FolderPermissionLevel>"
                          for folder, level in levels.items())
    return (f'<m:AddDelegate><m:Mailbox><t:EmailAddress>{mailbox or owner.address}</t:EmailAddress></m:Mailbox>'
            f'<m:DelegateUsers><t:DelegateUser>{user_id(delegate)}'
            f'<t:DelegatePermissions>{permissions}</t:DelegatePermissions>{extra}</t:DelegateUser></m:DelegateUsers>'
            '</m:AddDelegate>')


def get(owner: Mailbox, users: list[str] | None = None, permissions: bool = True) -> str:
    listed = f"<m:UserIds>{''.join(user_id(u) for u in users)}</m:UserIds>" if users else ""
    return (f'<m:GetDelegate IncludePermissions="{str(permissions).lower()}"><m:Mailbox><t:EmailAddress>'
            f'{owner.address}</t:EmailAddress></m:Mailbox>{listed}</m:GetDelegate>')


def remove(owner: Mailbox, users: list[str]) -> str:
    return (f'<m:RemoveDelegate><m:Mailbox><t:EmailAddress>{owner.address}</t:EmailAddress></m:Mailbox>'
            f"<m:UserIds>{''.join(user_id(u) for u in users)}</m:UserIds></m:RemoveDelegate>")


def update(owner: Mailbox, delegate: str, levels: dict[str, str], extra: str = "") -> str:
    return add(owner, delegate, levels, extra).replace("AddDelegate", "UpdateDelegate")


def top_code(root) -> str:  # noqa: ANN001
    return root.find("s:Body/*/m:ResponseCode", NS).text


def delegate_codes(root) -> list[str]:  # noqa: ANN001
    return [c.text for c in root.iterfind("s:Body/*/m:ResponseMessages/*/m:ResponseCode", NS)]


def inbox_of(owner: Mailbox, shape: str = "IdOnly") -> str:
    return (f'<m:GetFolder><m:FolderShape><t:BaseShape>{shape}</t:BaseShape></m:FolderShape><m:FolderIds>'
            f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{owner.address}</t:EmailAddress>'
            '</t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>')


@pytest.fixture
def people(server_store):  # noqa: ANN201
    domain = new_domain(server_store)
    return (new_mailbox(server_store, domain, "olive", "Olive Owner"),
            new_mailbox(server_store, domain, "dan", "Dan Delegate"),
            new_mailbox(server_store, domain, "sam", "Sam Stranger"))


def test_add_get_update_remove_a_delegate(server, server_store, people):
    owner, dan, _ = people
    account = make_account(server, owner.address)
    assert account.delegates == []

    added = call(server, owner, add(owner, dan.address, {"Calendar": "Editor", "Inbox": "Reviewer"},
                                    "<t:ReceiveCopiesOfMeetingMessages>true</t:ReceiveCopiesOfMeetingMessages>"
                                    "<t:ViewPrivateItems>false</t:ViewPrivateItems>"))
    assert top_code(added) == "NoError" and delegate_codes(added) == ["NoError"]

    [found] = account.delegates
    assert found.user_id.primary_smtp_address == dan.address
    assert found.user_id.display_name == "Dan Delegate"
    assert found.delegate_permissions.calendar_folder_permission_level == "Editor"
    assert found.delegate_permissions.inbox_folder_permission_level == "Reviewer"
    assert found.delegate_permissions.tasks_folder_permission_level == "None"
    assert found.receive_copies_of_meeting_messages is True
    assert found.view_private_items is False
    # The level is nothing but a folder permission entry on the owner's folder.
    inbox = server_store.folders.distinguished(owner, "inbox")
    assert server_store.permissions.rights(inbox.id, dan) == level_rights("Reviewer", calendar=False)
    assert call(server, dan, inbox_of(owner)).find(".//m:ResponseCode", NS).text == "NoError"

    updated = call(server, owner, update(owner, dan.address, {"Inbox": "None", "Tasks": "Author"}))
    assert delegate_codes(updated) == ["NoError"]
    [found] = account.delegates
    assert (found.delegate_permissions.inbox_folder_permission_level,
            found.delegate_permissions.tasks_folder_permission_level,
            found.delegate_permissions.calendar_folder_permission_level) == ("None", "Author", "Editor")
    assert codes(call(server, dan, inbox_of(owner))) == ["ErrorAccessDenied"]

    assert delegate_codes(call(server, owner, remove(owner, [dan.address]))) == ["NoError"]
    assert account.delegates == []
    calendar = server_store.folders.distinguished(owner, "calendar")
    assert server_store.folders.permissions(owner, calendar.id) == []


def test_get_delegate_without_permissions_and_deliver_meeting_requests(server, people):
    owner, dan, sam = people
    root = call(server, owner, get(owner))
    assert root.find(".//m:ResponseMessages", NS) is None
    assert root.find(".//m:DeliverMeetingRequests", NS).text == "DelegatesAndSendInformationToMe"
    body = add(owner, dan.address, {"Tasks": "Reviewer"}).replace(
        "</m:DelegateUsers>", "</m:DelegateUsers><m:DeliverMeetingRequests>DelegatesOnly</m:DeliverMeetingRequests>")
    assert delegate_codes(call(server, owner, body)) == ["NoError"]
    root = call(server, owner, get(owner, [dan.address, sam.address], permissions=False))
    assert delegate_codes(root) == ["NoError", "ErrorNotDelegate"]
    assert root.find(".//t:DelegatePermissions", NS) is None
    assert root.find(".//m:DeliverMeetingRequests", NS).text == "DelegatesOnly"


def test_delegate_errors(server, server_store, people):
    owner, dan, sam = people
    assert delegate_codes(call(server, owner, add(owner, dan.address, {"Inbox": "Author"}))) == ["NoError"]
    assert delegate_codes(call(server, owner, add(owner, dan.address, {"Inbox": "Author"}))) == [
        "ErrorDelegateAlreadyExists"]
    assert delegate_codes(call(server, owner, add(owner, sam.address, {"Inbox": "None"}))) == [
        "ErrorDelegateMissingConfiguration"]
    assert delegate_codes(call(server, owner, add(owner, sam.address, {"Inbox": "Custom"}))) == [
        "ErrorInvalidDelegatePermission"]
    assert delegate_codes(call(server, owner, add(owner, f"nobody@{owner.address.split('@')[1]}",
                                                  {"Inbox": "Author"}))) == ["ErrorDelegateNoUser"]
    assert delegate_codes(call(server, owner, add(owner, owner.address, {"Inbox": "Author"}))) == [
        "ErrorDelegateCannotAddOwner"]
    assert delegate_codes(call(server, owner, update(owner, sam.address, {"Inbox": "Author"}))) == [
        "ErrorNotDelegate"]
    assert delegate_codes(call(server, owner, remove(owner, [sam.address, dan.address]))) == [
        "ErrorNotDelegate", "NoError"]
    # Only the owner manages its delegates; a mailbox that does not exist is said so.
    assert top_code(call(server, sam, add(owner, sam.address, {"Inbox": "Editor"}))) == "ErrorAccessDenied"
    assert top_code(call(server, sam, get(owner))) == "ErrorAccessDenied"
    ghost = Mailbox(0, "", f"ghost@{owner.address.split('@')[1]}", "", 0, "", "")
    assert top_code(call(server, owner, get(ghost))) == "ErrorNonExistentMailbox"
    assert server_store.permissions.delegates(owner, {}) == []
    # Nothing a refused request named was written.
    inbox = server_store.folders.distinguished(owner, "inbox")
    assert server_store.folders.permissions(owner, inbox.id) == []


def test_a_delegate_sends_on_behalf_of_the_owner(server, server_store, people):
    owner, dan, sam = people
    friend = new_mailbox(server_store, owner.address.split("@")[1], "friend")
    assert delegate_codes(call(server, owner, add(owner, dan.address, {"Calendar": "Editor"}))) == ["NoError"]
    as_dan = make_account(server, dan.address)
    Message(account=as_dan, folder=as_dan.sent, subject="for Olive", body="hello",
            author=EwsMailbox(email_address=owner.address),
            to_recipients=[EwsMailbox(email_address=friend.address)]).send_and_save()
    server.settle()  # sent mail is delivered by the transport, after the send returns
    received = make_account(server, friend.address).inbox.get(subject="for Olive")
    assert received.author.email_address == owner.address
    assert received.sender.email_address == dan.address

    as_sam = make_account(server, sam.address)
    with pytest.raises(Exception, match="ErrorSendAsDenied|may not send on behalf"):
        Message(account=as_sam, subject="forged", body="x", author=EwsMailbox(email_address=owner.address),
                to_recipients=[EwsMailbox(email_address=friend.address)]).send()
    server.settle()
    assert make_account(server, friend.address).inbox.filter(subject="forged").count() == 0


def permission(user: str, level: str, tag: str = "Permission", level_tag: str = "PermissionLevel") -> str:
    who = (f"<t:DistinguishedUser>{user}</t:DistinguishedUser>" if user in ("Default", "Anonymous")
           else f"<t:PrimarySmtpAddress>{user}</t:PrimarySmtpAddress>")
    return f"<t:{tag}><t:UserId>{who}</t:UserId><t:{level_tag}>{level}</t:{level_tag}></t:{tag}>"


def set_permissions(folder_id: str, entries: str, calendar: bool = False) -> str:
    kind, holder = ("CalendarFolder", "CalendarPermissions") if calendar else ("Folder", "Permissions")
    return ('<m:UpdateFolder><m:FolderChanges><t:FolderChange>'
            f'<t:FolderId Id="{folder_id}"/><t:Updates><t:SetFolderField>'
            '<t:FieldURI FieldURI="folder:PermissionSet"/>'
            f'<t:{kind}><t:PermissionSet><t:{holder}>{entries}</t:{holder}></t:PermissionSet></t:{kind}>'
            '</t:SetFolderField></t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>')


def get_permissions(folder_id: str) -> str:
    return ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>'
            '<t:FieldURI FieldURI="folder:PermissionSet"/><t:FieldURI FieldURI="folder:EffectiveRights"/>'
            f'</t:AdditionalProperties></m:FolderShape><m:FolderIds><t:FolderId Id="{folder_id}"/></m:FolderIds>'
            '</m:GetFolder>')


def levels(root) -> dict[str, str]:  # noqa: ANN001
    found = {}
    for entry in root.iterfind(".//t:Permissions/t:Permission", NS):
        user = entry.find("t:UserId/t:DistinguishedUser", NS)
        who = user.text if user is not None else entry.find("t:UserId/t:PrimarySmtpAddress", NS).text
        found[who] = entry.find("t:PermissionLevel", NS).text
    return found


def test_folder_permission_set(server, server_store, people):
    owner, dan, sam = people
    inbox = server_store.folders.distinguished(owner, "inbox")
    folder = server_store.folders.create(owner, inbox.id, "Shared", "IPF.Note")
    fid = ids.folder_id(owner.guid, folder.id)
    assert levels(call(server, owner, get_permissions(fid))) == {"Default": "None", "Anonymous": "None"}

    entries = permission("Default", "Reviewer") + permission(dan.address, "Editor")
    assert codes(call(server, owner, set_permissions(fid, entries))) == ["NoError"]
    root = call(server, owner, get_permissions(fid))
    assert levels(root) == {"Default": "Reviewer", "Anonymous": "None", dan.address: "Editor"}
    dan_entry = [e for e in root.iterfind(".//t:Permission", NS)
                 if e.findtext("t:UserId/t:PrimarySmtpAddress", namespaces=NS) == dan.address][0]
    assert [dan_entry.findtext(f"t:{n}", namespaces=NS) for n in ("CanCreateItems", "EditItems", "ReadItems")] == [
        "true", "All", "FullDetails"]
    # The delegate sees its own rights; a stranger gets what Default gives (Reviewer: read, no create).
    rights = call(server, dan, get_permissions(fid)).find(".//t:EffectiveRights", NS)
    assert rights.findtext("t:CreateContents", namespaces=NS) == "true"
    assert rights.findtext("t:Modify", namespaces=NS) == "false"
    rights = call(server, sam, get_permissions(fid)).find(".//t:EffectiveRights", NS)
    assert (rights.findtext("t:Read", namespaces=NS), rights.findtext("t:CreateContents", namespaces=NS)) == (
        "true", "false")
    # Only the folder owner changes permissions.
    assert codes(call(server, dan, set_permissions(fid, permission(dan.address, "Owner")))) == ["ErrorAccessDenied"]

    # Custom rights map to the level they amount to; bad input changes nothing.
    custom = (f"<t:Permission><t:UserId><t:PrimarySmtpAddress>{sam.address}</t:PrimarySmtpAddress></t:UserId>"
              "<t:CanCreateItems>true</t:CanCreateItems><t:IsFolderVisible>true</t:IsFolderVisible>"
              "<t:EditItems>Owned</t:EditItems><t:DeleteItems>Owned</t:DeleteItems><t:ReadItems>FullDetails</t:ReadItems>"
              "<t:PermissionLevel>Custom</t:PermissionLevel></t:Permission>")
    assert codes(call(server, owner, set_permissions(fid, custom))) == ["NoError"]
    assert levels(call(server, owner, get_permissions(fid))) == {"Default": "None", "Anonymous": "None",
                                                                 sam.address: "Author"}
    for bad, code in ((permission(dan.address, "FreeBusyTimeOnly"), "ErrorInvalidPermissionSettings"),
                      (permission("ghost@nowhere.example", "Editor"), "ErrorInvalidUserInfo"),
                      (permission(dan.address, "Editor") * 2, "ErrorDuplicateUserIdsSpecified")):
        assert codes(call(server, owner, set_permissions(fid, bad))) == [code]
    assert levels(call(server, owner, get_permissions(fid)))[sam.address] == "Author"

    delete = ('<m:UpdateFolder><m:FolderChanges><t:FolderChange>'
              f'<t:FolderId Id="{fid}"/><t:Updates><t:DeleteFolderField>'
              '<t:FieldURI FieldURI="folder:PermissionSet"/></t:DeleteFolderField></t:Updates></t:FolderChange>'
              '</m:FolderChanges></m:UpdateFolder>')
    assert codes(call(server, owner, delete)) == ["NoError"]
    assert server_store.folders.permissions(owner, folder.id) == []


def test_calendar_permission_set_and_create_folder_with_permissions(server, server_store, people):
    owner, dan, _ = people
    calendar = server_store.folders.distinguished(owner, "calendar")
    fid = ids.folder_id(owner.guid, calendar.id)
    root = call(server, owner, get_permissions(fid))
    default = root.find(".//t:CalendarPermissions/t:CalendarPermission", NS)
    assert default.findtext("t:CalendarPermissionLevel", namespaces=NS) == "FreeBusyTimeOnly"
    assert default.findtext("t:ReadItems", namespaces=NS) == "TimeOnly"
    entries = permission(dan.address, "FreeBusyTimeAndSubjectAndLocation", "CalendarPermission",
                         "CalendarPermissionLevel")
    assert codes(call(server, owner, set_permissions(fid, entries, calendar=True))) == ["NoError"]
    [entry] = server_store.folders.permissions(owner, calendar.id)
    assert entry.rights == Right.FREEBUSY_SIMPLE | Right.FREEBUSY_DETAILED

    create = ('<m:CreateFolder><m:ParentFolderId><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderId>'
              '<m:Folders><t:Folder><t:DisplayName>Team</t:DisplayName><t:PermissionSet><t:Permissions>'
              f'{permission(dan.address, "PublishingAuthor")}</t:Permissions></t:PermissionSet></t:Folder>'
              '</m:Folders></m:CreateFolder>')
    created = call(server, owner, create).find(".//t:FolderId", NS).get("Id")
    assert levels(call(server, owner, get_permissions(created)))[dan.address] == "PublishingAuthor"
    # exchangelib reads the permission set too.
    account = make_account(server, owner.address)
    team = account.inbox / "Team"
    users = {p.user_id.primary_smtp_address or p.user_id.distinguished_user
             for p in team.permission_set.permissions}
    assert users == {"Default", "Anonymous", dan.address}


def test_item_effective_rights_follow_the_callers_folder_rights(server, server_store, people):
    owner, dan, sam = people
    inbox = server_store.folders.distinguished(owner, "inbox")
    folder = server_store.folders.create(owner, inbox.id, "Rights", "IPF.Note")
    fid = ids.folder_id(owner.guid, folder.id)
    entries = permission("Default", "Reviewer") + permission(dan.address, "Editor")
    assert codes(call(server, owner, set_permissions(fid, entries))) == ["NoError"]
    [row] = server_store.items.create_many(owner, folder.id, [NewItem(props={"Subject": "shared"})])
    get = ('<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>'
           '<t:FieldURI FieldURI="item:EffectiveRights"/></t:AdditionalProperties></m:ItemShape>'
           f'<m:ItemIds><t:ItemId Id="{ids.item_id(owner.guid, row)}"/></m:ItemIds></m:GetItem>')

    def rights(caller: Mailbox) -> tuple[str | None, ...]:
        node = call(server, caller, get).find(".//t:EffectiveRights", NS)
        return tuple(node.findtext(f"t:{n}", namespaces=NS) for n in ("Read", "Modify", "Delete"))

    assert rights(owner) == ("true", "true", "true")
    assert rights(dan) == ("true", "true", "true")  # Editor: edit and delete every item
    assert rights(sam) == ("true", "false", "false")  # Default Reviewer: read only


def delegate_account(server, owner: Mailbox, delegate: Mailbox) -> Account:  # noqa: ANN001
    """``owner``'s mailbox as ``delegate`` logs in to it (exchangelib's DELEGATE access)."""
    config = Configuration(service_endpoint=server.ews_url, credentials=Credentials(delegate.address, PASSWORD),
                           auth_type=BASIC)
    return Account(owner.address, config=config, autodiscover=False, access_type=DELEGATE)


@pytest.mark.parametrize("view_private", [False, True])
def test_private_items_and_view_private_items(server, server_store, people, view_private):
    """exchangelib as a delegate: private appointments and messages of the owner are absent unless
    the delegate was given ViewPrivateItems; counts and pages say the same."""
    owner, dan, _sam = people
    flag = f"<t:ViewPrivateItems>{str(view_private).lower()}</t:ViewPrivateItems>"
    assert delegate_codes(call(server, owner, add(owner, dan.address, {"Calendar": "Editor", "Inbox": "Reviewer"},
                                                  flag))) == ["NoError"]
    as_owner = make_account(server, owner.address)
    start = EWSDateTime(2030, 3, 4, 9, tzinfo=UTC)
    for n, sensitivity in enumerate(("Normal", "Private", "Normal")):
        CalendarItem(account=as_owner, folder=as_owner.calendar, subject=f"slot {n}", sensitivity=sensitivity,
                     start=start + timedelta(hours=n), end=start + timedelta(hours=n, minutes=30)).save()
        Message(account=as_owner, folder=as_owner.inbox, subject=f"note {n}", sensitivity=sensitivity,
                body="x").save()
    root = ids.folder_id(owner.guid, server_store.folders.distinguished(owner, "root").id)
    assert codes(call(server, owner, set_permissions(root, permission(dan.address, "Reviewer")))) == ["NoError"]
    as_dan = delegate_account(server, owner, dan)  # exchangelib opens the root folder first
    view = as_dan.calendar.view(start=start - timedelta(hours=1), end=start + timedelta(hours=5))
    shown = ["slot 0", "slot 1", "slot 2"] if view_private else ["slot 0", "slot 2"]
    assert sorted(i.subject for i in view) == shown
    notes = as_dan.inbox.all().order_by("subject")
    assert [i.subject for i in notes] == [s.replace("slot", "note") for s in shown]
    assert as_dan.inbox.all().count() == len(shown)
    assert [i.subject for i in notes[1:2]] == [shown[1].replace("slot", "note")]
    private = as_owner.inbox.get(subject="note 1")
    if view_private:
        assert [i.subject for i in as_dan.fetch(ids=[(private.id, private.changekey)])] == ["note 1"]
    else:
        with pytest.raises(ErrorAccessDenied):
            list(as_dan.fetch(ids=[(private.id, private.changekey)]))
    # The owner always sees everything.
    assert as_owner.inbox.all().count() == 3


def test_find_folder_counts_only_the_folders_the_delegate_sees(server, server_store, people):
    """TotalItemsInView and pages of FindFolder in another mailbox hold the folders the caller may
    see, nothing else (no count of hidden folders leaks)."""
    owner, dan, _sam = people
    assert delegate_codes(call(server, owner, add(owner, dan.address, {"Inbox": "Reviewer"}))) == ["NoError"]
    inbox = server_store.folders.distinguished(owner, "inbox")
    made = [server_store.folders.create(owner, inbox.id, name, "IPF.Note") for name in ("A", "B", "C", "D")]
    for folder in made[1:3]:  # B and C are shared with Dan
        entries = permission(dan.address, "Reviewer")
        assert codes(call(server, owner, set_permissions(ids.folder_id(owner.guid, folder.id), entries))) == ["NoError"]
    where = (f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{owner.address}</t:EmailAddress>'
             '</t:Mailbox></t:DistinguishedFolderId>')

    def find(caller: Mailbox, view: str = "", traversal: str = "Shallow") -> tuple[str, list[str], str]:
        root = call(server, caller, f'<m:FindFolder Traversal="{traversal}"><m:FolderShape><t:BaseShape>Default'
                                    f'</t:BaseShape></m:FolderShape>{view}<m:ParentFolderIds>{where}'
                                    '</m:ParentFolderIds></m:FindFolder>')
        found = root.find(".//m:RootFolder", NS)
        return (found.get("TotalItemsInView"), [n.text for n in found.iterfind(".//t:DisplayName", NS)],
                found.get("IncludesLastItemInRange"))

    assert find(owner) == ("4", ["A", "B", "C", "D"], "true")
    assert find(dan) == ("2", ["B", "C"], "true")
    assert find(dan, traversal="Deep") == ("2", ["B", "C"], "true")
    first = '<m:IndexedPageFolderView MaxEntriesReturned="1" Offset="0" BasePoint="Beginning"/>'
    assert find(dan, first) == ("2", ["B"], "false")
    assert find(dan, first.replace('Offset="0"', 'Offset="1"')) == ("2", ["C"], "true")


def test_a_delegate_gets_no_notifications_of_the_owners_folders(server, server_store, people):
    """Subscriptions are to the caller's own mailbox: a delegate (here without ViewPrivateItems)
    cannot subscribe to the owner's folders, so no event (a private item's id included) reaches it
    that way; the owner's own subscription reports private items as any other."""
    owner, dan, _sam = people
    assert delegate_codes(call(server, owner, add(owner, dan.address, {"Inbox": "Reviewer"},
                                                  "<t:ViewPrivateItems>false</t:ViewPrivateItems>"))) == ["NoError"]
    root = ids.folder_id(owner.guid, server_store.folders.distinguished(owner, "root").id)
    assert codes(call(server, owner, set_permissions(root, permission(dan.address, "Reviewer")))) == ["NoError"]
    as_dan = delegate_account(server, owner, dan)
    with pytest.raises(ErrorInvalidSubscriptionRequest):
        as_dan.inbox.subscribe_to_pull()
    with pytest.raises(ErrorInvalidSubscriptionRequest):
        as_dan.inbox.subscribe_to_streaming()
    as_owner = make_account(server, owner.address)
    sid, watermark = as_owner.inbox.subscribe_to_pull(event_types=["CreatedEvent"])
    Message(account=as_owner, folder=as_owner.inbox, subject="secret", sensitivity="Private", body="x").save()
    [note] = list(as_owner.inbox.get_events(sid, watermark))
    assert [type(e).__name__ for e in note.events] == ["CreatedEvent"]
