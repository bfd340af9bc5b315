"""Folder operations (CreateFolder, UpdateFolder, DeleteFolder, EmptyFolder, MoveFolder, CopyFolder)
and the folder reads that follow them (GetFolder, FindFolder), through exchangelib and raw SOAP,
on both back ends."""

from __future__ import annotations

from exchangelib import Message
from exchangelib.folders import Messages
from lxml import etree

from .conftest import PASSWORD, new_mailbox
from .soap import NS, codes, envelope, parse, post

INBOX = '<t:DistinguishedFolderId Id="inbox"/>'
PROP = ('<t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="ProjectCode" '
        'PropertyType="String"/>')


# -- raw SOAP helpers ------------------------------------------------------------------------------
def soap(server, mailbox, body: str) -> etree._Element:
    return parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))


def fid(folder_id: str, change_key: str | None = None) -> str:
    key = f' ChangeKey="{change_key}"' if change_key else ""
    return f'<t:FolderId Id="{folder_id}"{key}/>'


def in_folders(root: etree._Element, element: str) -> list[etree._Element]:
    """``element`` of every folder in a response (m:Folders of Get/Create/..., t:Folders of FindFolder)."""
    return root.xpath(f"//m:Folders/*/t:{element} | //t:Folders/*/t:{element}", namespaces=NS)


def ids_of(root: etree._Element) -> list[str]:
    return [e.get("Id") for e in in_folders(root, "FolderId")]


def create(server, mailbox, parent: str, *names: str, kind: str = "Folder", extra: str = "") -> list[str]:
    folders = "".join(f"<t:{kind}>{extra}<t:DisplayName>{n}</t:DisplayName></t:{kind}>" for n in names)
    root = soap(server, mailbox, f"<m:CreateFolder><m:ParentFolderId>{parent}</m:ParentFolderId>"
                                 f"<m:Folders>{folders}</m:Folders></m:CreateFolder>")
    assert codes(root) == ["NoError"] * len(names)
    return ids_of(root)


def get_folders(server, mailbox, *id_xml: str, shape: str = "AllProperties", extra: str = "") -> etree._Element:
    additional = f"<t:AdditionalProperties>{extra}</t:AdditionalProperties>" if extra else ""
    return soap(server, mailbox, f"<m:GetFolder><m:FolderShape><t:BaseShape>{shape}</t:BaseShape>{additional}"
                                 f"</m:FolderShape><m:FolderIds>{''.join(id_xml)}</m:FolderIds></m:GetFolder>")


def info(server, mailbox, folder_id: str) -> dict[str, str]:
    """The folder's AllProperties fields by element name (ParentFolderId as its Id)."""
    root = get_folders(server, mailbox, fid(folder_id))
    assert codes(root) == ["NoError"]
    node = root.find(".//m:Folders", NS)[0]
    found = {etree.QName(c).localname: c.text for c in node}
    found["ParentFolderId"] = node.find("t:ParentFolderId", NS).get("Id")
    found["ChangeKey"] = node.find("t:FolderId", NS).get("ChangeKey")
    return found


def missing(server, mailbox, folder_id: str) -> bool:
    """True when GetFolder reports the folder gone. mailroom answers every well-formed id of a
    folder that does not exist with ErrorFolderNotFound (exchangelib treats it as missing)."""
    return codes(get_folders(server, mailbox, fid(folder_id))) == ["ErrorFolderNotFound"]


def folder_id_of(server, mailbox, distinguished: str) -> str:
    root = get_folders(server, mailbox, f'<t:DistinguishedFolderId Id="{distinguished}"/>', shape="IdOnly")
    return ids_of(root)[0]


def update(server, mailbox, target: str, *updates: str) -> etree._Element:
    return soap(server, mailbox, f"<m:UpdateFolder><m:FolderChanges><t:FolderChange>{target}<t:Updates>"
                                 f"{''.join(updates)}</t:Updates></t:FolderChange></m:FolderChanges></m:UpdateFolder>")


def set_field(uri: str, value: str) -> str:
    element = uri.split(":", 1)[1]
    return (f'<t:SetFolderField><t:FieldURI FieldURI="{uri}"/><t:Folder><t:{element}>{value}</t:{element}>'
            f"</t:Folder></t:SetFolderField>")


def add_message(server, mailbox, folder_id: str, subject: str, is_read: bool) -> None:
    read = "true" if is_read else "false"
    root = soap(server, mailbox, f'<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>{fid(folder_id)}'
                                 f"</m:SavedItemFolderId><m:Items><t:Message><t:Subject>{subject}</t:Subject>"
                                 f"<t:IsRead>{read}</t:IsRead></t:Message></m:Items></m:CreateItem>")
    assert codes(root) == ["NoError"]


def find(server, mailbox, parent: str, traversal: str = "Shallow", shape: str = "Default", view: str = "",
         restriction: str = "", extra: str = "") -> etree._Element:
    additional = f"<t:AdditionalProperties>{extra}</t:AdditionalProperties>" if extra else ""
    restrict = f"<m:Restriction>{restriction}</m:Restriction>" if restriction else ""
    return soap(server, mailbox, f'<m:FindFolder Traversal="{traversal}"><m:FolderShape><t:BaseShape>{shape}'
                                 f"</t:BaseShape>{additional}</m:FolderShape>{view}{restrict}"
                                 f"<m:ParentFolderIds>{parent}</m:ParentFolderIds></m:FindFolder>")


def names_in(root: etree._Element) -> list[str]:
    return [e.text for e in in_folders(root, "DisplayName")]


def paging(root: etree._Element) -> tuple[str | None, str | None, str | None]:
    node = root.find(".//m:RootFolder", NS)
    return node.get("IndexedPagingOffset"), node.get("TotalItemsInView"), node.get("IncludesLastItemInRange")


# -- CreateFolder ----------------------------------------------------------------------------------
def test_exchangelib_create_rename_delete(account, server_store, mailbox):
    inbox_id = server_store.folders.distinguished(mailbox, "inbox").id
    before = {f.display_name for f in server_store.folders.find(mailbox, inbox_id, deep=False)[0]}
    assert before == set()
    folder = Messages(parent=account.inbox, name="Projects")
    folder.save()
    assert folder.id and folder.changekey
    stored = server_store.folders.find(mailbox, inbox_id, deep=False)[0]
    assert {(f.display_name, f.folder_class) for f in stored if f.display_name not in before} == {
        ("Projects", "IPF.Note")}

    old_key = folder.changekey
    folder.name = "Projects 2026"
    folder.save()
    assert folder.changekey != old_key
    account.root.clear_cache()
    assert {f.name for f in account.inbox.children} == before | {"Projects 2026"}
    assert account.inbox.refresh().child_folder_count == 1

    folder.delete()
    account.root.clear_cache()
    assert {f.name for f in account.inbox.children} == before
    assert account.inbox.refresh().child_folder_count == 0


def test_create_folder_kinds_and_duplicates(server, mailbox):
    body = ("<m:CreateFolder><m:ParentFolderId>" + INBOX + "</m:ParentFolderId><m:Folders>"
            "<t:Folder><t:DisplayName>Mail</t:DisplayName></t:Folder>"
            "<t:CalendarFolder><t:DisplayName>Team calendar</t:DisplayName></t:CalendarFolder>"
            "<t:ContactsFolder><t:DisplayName>Suppliers</t:DisplayName></t:ContactsFolder>"
            "<t:TasksFolder><t:DisplayName>Chores</t:DisplayName></t:TasksFolder>"
            "<t:Folder><t:FolderClass>IPF.MyCustomFolderClass</t:FolderClass><t:DisplayName>Custom</t:DisplayName>"
            "</t:Folder>"
            "<t:SearchFolder><t:DisplayName>Search</t:DisplayName></t:SearchFolder>"
            "<t:Folder><t:DisplayName>MAIL</t:DisplayName></t:Folder>"
            "</m:Folders></m:CreateFolder>")
    root = soap(server, mailbox, body)
    assert codes(root) == ["NoError"] * 5 + ["ErrorInvalidOperation", "ErrorFolderExists"]
    created = root.findall(".//m:Folders/*", NS)
    assert [etree.QName(e).localname for e in created] == ["Folder", "CalendarFolder", "ContactsFolder",
                                                             "TasksFolder", "Folder"]
    assert all(e.find("t:FolderId", NS).get("ChangeKey") for e in created)
    classes = {info(server, mailbox, i)["DisplayName"]: info(server, mailbox, i)["FolderClass"] for i in ids_of(root)}
    assert classes == {"Mail": "IPF.Note", "Team calendar": "IPF.Appointment", "Suppliers": "IPF.Contact",
                       "Chores": "IPF.Task", "Custom": "IPF.MyCustomFolderClass"}
    inbox = info(server, mailbox, folder_id_of(server, mailbox, "inbox"))
    assert inbox["ChildFolderCount"] == "5"


def test_create_folder_errors(server, mailbox):
    [gone] = create(server, mailbox, INBOX, "Short lived")
    assert codes(soap(server, mailbox, f'<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds>{fid(gone)}'
                                       "</m:FolderIds></m:DeleteFolder>")) == ["NoError"]
    cases = [
        (INBOX, "<t:Folder><t:FolderClass>IPF.Note</t:FolderClass></t:Folder>", "ErrorInvalidRequest"),
        (INBOX, "<t:Folder><t:DisplayName>X</t:DisplayName><t:TotalCount>3</t:TotalCount></t:Folder>",
         "ErrorInvalidPropertySet"),
        (fid(gone), "<t:Folder><t:DisplayName>Orphan</t:DisplayName></t:Folder>", "ErrorParentFolderNotFound"),
        (fid("not-an-id"), "<t:Folder><t:DisplayName>Orphan</t:DisplayName></t:Folder>", "ErrorInvalidIdMalformed"),
    ]
    for parent, folder, code in cases:
        root = soap(server, mailbox, f"<m:CreateFolder><m:ParentFolderId>{parent}</m:ParentFolderId>"
                                     f"<m:Folders>{folder}</m:Folders></m:CreateFolder>")
        assert codes(root) == [code], folder
    assert names_in(find(server, mailbox, INBOX)) == []


def test_extended_properties_on_folders(server, mailbox):
    prop = f"<t:ExtendedProperty>{PROP}<t:Value>ACME-7</t:Value></t:ExtendedProperty>"
    [folder] = create(server, mailbox, INBOX, "Tagged", extra=prop)

    def project_code() -> str | None:
        root = get_folders(server, mailbox, fid(folder), shape="IdOnly", extra=PROP)
        node = root.find(".//t:ExtendedProperty/t:Value", NS)
        return None if node is None else node.text

    assert project_code() == "ACME-7"
    new_value = f"<t:ExtendedProperty>{PROP}<t:Value>ACME-8</t:Value></t:ExtendedProperty>"
    root = update(server, mailbox, fid(folder), f"<t:SetFolderField>{PROP}<t:Folder>{new_value}</t:Folder>"
                                                "</t:SetFolderField>")
    assert codes(root) == ["NoError"]
    assert project_code() == "ACME-8"
    found = find(server, mailbox, INBOX, shape="IdOnly", extra=PROP)
    assert [v.text for v in found.iterfind(".//t:ExtendedProperty/t:Value", NS)] == ["ACME-8"]
    assert codes(update(server, mailbox, fid(folder), f"<t:DeleteFolderField>{PROP}</t:DeleteFolderField>")) == [
        "NoError"]
    assert project_code() is None


# -- UpdateFolder ----------------------------------------------------------------------------------
def test_update_folder_fields_and_change_keys(server, mailbox):
    folder, sibling = create(server, mailbox, INBOX, "Drafts 2025", "Archive 2024")
    before = info(server, mailbox, folder)
    root = update(server, mailbox, fid(folder, before["ChangeKey"]), set_field("folder:DisplayName", "Drafts 2026"),
                  set_field("folder:FolderClass", "IPF.Note.Custom"))
    assert codes(root) == ["NoError"]
    answered = root.find(".//m:Folders/t:Folder/t:FolderId", NS)
    after = info(server, mailbox, folder)
    assert (after["DisplayName"], after["FolderClass"]) == ("Drafts 2026", "IPF.Note.Custom")
    assert answered.get("Id") == folder
    assert answered.get("ChangeKey") == after["ChangeKey"] != before["ChangeKey"]

    # Folder updates are last-writer-wins: an older ChangeKey still applies; a malformed one does not.
    assert codes(update(server, mailbox, fid(folder, before["ChangeKey"]),
                        set_field("folder:DisplayName", "Drafts"))) == ["NoError"]
    assert codes(update(server, mailbox, fid(folder, "not base64!"),
                        set_field("folder:DisplayName", "Never"))) == ["ErrorInvalidChangeKey"]
    assert codes(update(server, mailbox, fid(folder), "<t:DeleteFolderField><t:FieldURI "
                                                      'FieldURI="folder:FolderClass"/></t:DeleteFolderField>')) == [
        "NoError"]
    assert "FolderClass" not in info(server, mailbox, folder)

    # A distinguished folder can be named by DistinguishedFolderId; renaming to a sibling's name clashes.
    assert codes(update(server, mailbox, '<t:DistinguishedFolderId Id="inbox"/>',
                        "<t:DeleteFolderField><t:FieldURI FieldURI=\"folder:PermissionSet\"/></t:DeleteFolderField>"
                        )) == ["NoError"]
    assert codes(update(server, mailbox, fid(sibling), set_field("folder:DisplayName", "DRAFTS"))) == [
        "ErrorFolderExists"]
    assert info(server, mailbox, sibling)["DisplayName"] == "Archive 2024"


def test_update_folder_errors(server, mailbox):
    [folder] = create(server, mailbox, INBOX, "Stable")
    two = ('<t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:FolderClass>IPF.Note'
           "</t:FolderClass><t:DisplayName>Two</t:DisplayName></t:Folder></t:SetFolderField>")
    mismatch = ('<t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:FolderClass>IPF.Note'
                "</t:FolderClass></t:Folder></t:SetFolderField>")
    append = ('<t:AppendToFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder><t:DisplayName>x'
              "</t:DisplayName></t:Folder></t:AppendToFolderField>")
    other = f"<t:ExtendedProperty>{PROP.replace('ProjectCode', 'Other')}<t:Value>x</t:Value></t:ExtendedProperty>"
    cases = [
        (set_field("folder:TotalCount", "5"), "ErrorInvalidPropertySet"),
        (set_field("folder:DisplayName", " "), "ErrorInvalidPropertySet"),
        (two, "ErrorIncorrectUpdatePropertyCount"),
        (mismatch, "ErrorIncorrectUpdatePropertyCount"),
        (append, "ErrorInvalidPropertyAppend"),
        ('<t:DeleteFolderField><t:FieldURI FieldURI="folder:DisplayName"/></t:DeleteFolderField>',
         "ErrorInvalidPropertyDelete"),
        ('<t:DeleteFolderField><t:FieldURI FieldURI="folder:UnreadCount"/></t:DeleteFolderField>',
         "ErrorInvalidPropertyDelete"),
        (f"<t:SetFolderField>{PROP}<t:Folder>{other}</t:Folder></t:SetFolderField>",
         "ErrorIncorrectUpdatePropertyCount"),
        ('<t:SetFolderField><t:IndexedFieldURI FieldURI="contacts:EmailAddress" FieldIndex="EmailAddress1"/>'
         "<t:Folder><t:DisplayName>x</t:DisplayName></t:Folder></t:SetFolderField>", "ErrorInvalidPropertySet"),
    ]
    for change, code in cases:
        # A bad change fails the whole FolderChange: the rename before it is not applied either.
        assert codes(update(server, mailbox, fid(folder), set_field("folder:DisplayName", "Moved on"), change)) == [
            code], change
    assert info(server, mailbox, folder)["DisplayName"] == "Stable"
    assert codes(update(server, mailbox, fid("garbage"), set_field("folder:DisplayName", "x"))) == [
        "ErrorInvalidIdMalformed"]


# -- DeleteFolder ----------------------------------------------------------------------------------
def delete(server, mailbox, delete_type: str, *id_xml: str) -> list[str]:
    return codes(soap(server, mailbox, f'<m:DeleteFolder DeleteType="{delete_type}"><m:FolderIds>{"".join(id_xml)}'
                                       "</m:FolderIds></m:DeleteFolder>"))


def test_delete_folder_disposal_types(server, mailbox, server_store):
    trash = folder_id_of(server, mailbox, "deleteditems")
    dumpster = folder_id_of(server, mailbox, "recoverableitemsdeletions")
    hard, soft, moved = create(server, mailbox, INBOX, "Hard", "Soft", "Moved")
    [inner] = create(server, mailbox, fid(hard), "Inner")
    add_message(server, mailbox, inner, "inside", is_read=False)

    assert delete(server, mailbox, "HardDelete", fid(hard)) == ["NoError"]
    assert missing(server, mailbox, hard) and missing(server, mailbox, inner)
    assert server_store.items.find(mailbox, server_store.folders.distinguished(mailbox, "inbox").id)[1] == 0

    assert delete(server, mailbox, "SoftDelete", fid(soft)) == ["NoError"]
    assert info(server, mailbox, soft)["ParentFolderId"] == dumpster
    assert delete(server, mailbox, "MoveToDeletedItems", fid(moved)) == ["NoError"]
    assert info(server, mailbox, moved)["ParentFolderId"] == trash  # the same id, now in Deleted Items
    # Deleting to Deleted Items from inside Deleted Items goes to the dumpster; from the dumpster, for good.
    [nested] = create(server, mailbox, fid(moved), "Nested")
    assert delete(server, mailbox, "MoveToDeletedItems", fid(nested)) == ["NoError"]
    assert info(server, mailbox, nested)["ParentFolderId"] == dumpster
    assert delete(server, mailbox, "SoftDelete", fid(nested)) == ["NoError"]
    assert missing(server, mailbox, nested)
    assert info(server, mailbox, trash)["ChildFolderCount"] == "1"
    assert info(server, mailbox, folder_id_of(server, mailbox, "inbox"))["ChildFolderCount"] == "0"

    assert delete(server, mailbox, "HardDelete", INBOX, '<t:DistinguishedFolderId Id="deleteditems"/>',
                  fid(moved), fid("garbage")) == ["ErrorDeleteDistinguishedFolder", "ErrorDeleteDistinguishedFolder",
                                                  "NoError", "ErrorInvalidIdMalformed"]
    fault = soap(server, mailbox, f'<m:DeleteFolder DeleteType="Shred"><m:FolderIds>{INBOX}</m:FolderIds>'
                                  "</m:DeleteFolder>")
    assert fault.find(".//faultcode").text.endswith("ErrorSchemaValidation")


# -- EmptyFolder -----------------------------------------------------------------------------------
def test_exchangelib_empty_folder(account):
    folder = Messages(parent=account.inbox, name="Newsletters")
    folder.save()
    sub = Messages(parent=folder, name="Old")
    sub.save()
    for n in range(3):
        Message(account=account, folder=folder, subject=f"issue {n}", is_read=n == 0).save()
    Message(account=account, folder=sub, subject="ancient").save()
    folder.refresh()
    assert (folder.total_count, folder.unread_count, folder.child_folder_count) == (3, 2, 1)

    folder.empty()
    folder.refresh()
    assert (folder.total_count, folder.unread_count, folder.child_folder_count) == (0, 0, 1)
    assert sub.refresh().total_count == 1

    folder.empty(delete_sub_folders=True)
    assert folder.refresh().child_folder_count == 0
    assert list(folder.children) == []


def test_empty_folder_dispositions(server, mailbox):
    trash = folder_id_of(server, mailbox, "deleteditems")
    [folder] = create(server, mailbox, INBOX, "Reports")
    [sub] = create(server, mailbox, fid(folder), "Weekly")
    add_message(server, mailbox, folder, "q1", is_read=False)
    add_message(server, mailbox, sub, "w1", is_read=True)

    def empty(target: str, delete_type: str, subfolders: str) -> list[str]:
        return codes(soap(server, mailbox, f'<m:EmptyFolder DeleteType="{delete_type}" DeleteSubFolders="{subfolders}">'
                                           f"<m:FolderIds>{target}</m:FolderIds></m:EmptyFolder>"))

    assert empty(fid(folder), "MoveToDeletedItems", "true") == ["NoError"]
    assert info(server, mailbox, folder)["TotalCount"] == "0"
    assert info(server, mailbox, folder)["ChildFolderCount"] == "0"
    assert info(server, mailbox, sub)["ParentFolderId"] == trash  # the subfolder moved with its item
    assert info(server, mailbox, sub)["TotalCount"] == "1"
    assert (info(server, mailbox, trash)["TotalCount"], info(server, mailbox, trash)["UnreadCount"]) == ("1", "1")

    # Emptying Deleted Items (a distinguished folder: allowed here) moves its contents to the dumpster;
    # emptying the dumpster removes them for good.
    dumpster = folder_id_of(server, mailbox, "recoverableitemsdeletions")
    assert empty('<t:DistinguishedFolderId Id="deleteditems"/>', "MoveToDeletedItems", "true") == ["NoError"]
    emptied = info(server, mailbox, trash)
    assert (emptied["TotalCount"], emptied["UnreadCount"], emptied["ChildFolderCount"]) == ("0", "0", "0")
    assert info(server, mailbox, sub)["ParentFolderId"] == dumpster
    assert info(server, mailbox, dumpster)["TotalCount"] == "1"
    assert empty(fid(dumpster), "HardDelete", "true") == ["NoError"]
    assert missing(server, mailbox, sub)
    assert (info(server, mailbox, dumpster)["TotalCount"], info(server, mailbox, dumpster)["ChildFolderCount"]) == (
        "0", "0")

    # DeleteSubFolders never deletes distinguished folders: they stay, with their contents.
    top = folder_id_of(server, mailbox, "msgfolderroot")
    inbox = folder_id_of(server, mailbox, "inbox")
    [loose] = create(server, mailbox, fid(top), "Loose ends")
    top_children = int(info(server, mailbox, top)["ChildFolderCount"])
    add_message(server, mailbox, inbox, "keep me", is_read=False)
    assert empty(fid(top), "HardDelete", "true") == ["NoError"]
    assert missing(server, mailbox, loose)
    assert int(info(server, mailbox, top)["ChildFolderCount"]) == top_children - 1
    assert info(server, mailbox, inbox)["TotalCount"] == "1"
    assert info(server, mailbox, folder)["DisplayName"] == "Reports"

    assert empty(INBOX, "HardDelete", "true") == ["NoError"]
    emptied = info(server, mailbox, inbox)
    assert (emptied["TotalCount"], emptied["UnreadCount"], emptied["ChildFolderCount"]) == ("0", "0", "0")
    assert names_in(find(server, mailbox, INBOX)) == []
    assert missing(server, mailbox, folder)
    fault = soap(server, mailbox, '<m:EmptyFolder DeleteType="HardDelete" DeleteSubFolders="maybe">'
                                  f"<m:FolderIds>{INBOX}</m:FolderIds></m:EmptyFolder>")
    assert fault.find(".//e:ResponseCode", NS).text == "ErrorSchemaValidation"
    too_old = envelope(f'<m:EmptyFolder DeleteType="HardDelete" DeleteSubFolders="false"><m:FolderIds>{INBOX}'
                       "</m:FolderIds></m:EmptyFolder>", version="Exchange2010")  # EmptyFolder came in 2010 SP1
    fault = parse(post(server.ews_url, too_old, mailbox.address, PASSWORD))
    assert fault.find(".//e:ResponseCode", NS).text == "ErrorInvalidSchemaVersionForMailboxVersion"


# -- MoveFolder / CopyFolder -----------------------------------------------------------------------
def test_exchangelib_move_and_walk(account):
    parent = Messages(parent=account.inbox, name="Clients")
    parent.save()
    child = Messages(parent=parent, name="ACME")
    child.save()
    Message(account=account, folder=child, subject="contract", is_read=False).save()
    old_id = parent.id

    parent.move(account.drafts)
    assert parent.id == old_id
    account.root.clear_cache()
    assert [f.name for f in account.drafts.children] == ["Clients"]
    assert [f.name for f in account.inbox.children] == []
    paths = {f.absolute for f in account.root.walk()}
    assert "/Root/Top of Information Store/Drafts/Clients/ACME" in paths
    moved_child = next(f for f in account.root.walk() if f.name == "ACME")
    assert (moved_child.total_count, moved_child.unread_count) == (1, 1)
    assert account.drafts.refresh().child_folder_count == 1
    assert account.inbox.refresh().child_folder_count == 0


def move_or_copy(server, mailbox, op: str, to: str, *id_xml: str) -> etree._Element:
    return soap(server, mailbox, f"<m:{op}><m:ToFolderId>{to}</m:ToFolderId><m:FolderIds>{''.join(id_xml)}"
                                 f"</m:FolderIds></m:{op}>")


def test_move_folder_errors(server, mailbox):
    top, other = create(server, mailbox, INBOX, "Top", "Other")
    [below] = create(server, mailbox, fid(top), "Below")
    [clash] = create(server, mailbox, fid(other), "Top")
    [gone] = create(server, mailbox, INBOX, "Gone")
    assert delete(server, mailbox, "HardDelete", fid(gone)) == ["NoError"]

    root = move_or_copy(server, mailbox, "MoveFolder", fid(below), INBOX, fid(top), fid(below), fid(other))
    assert codes(root) == ["ErrorMoveDistinguishedFolder", "ErrorMoveCopyFailed", "ErrorMoveCopyFailed", "NoError"]
    assert ids_of(root) == [other]
    assert info(server, mailbox, other)["ParentFolderId"] == below
    assert codes(move_or_copy(server, mailbox, "MoveFolder", fid(gone), fid(top))) == ["ErrorToFolderNotFound"]
    assert codes(move_or_copy(server, mailbox, "MoveFolder", INBOX, fid(clash))) == ["ErrorFolderExists"]
    assert info(server, mailbox, top)["ParentFolderId"] == folder_id_of(server, mailbox, "inbox")
    assert info(server, mailbox, clash)["ParentFolderId"] == other


def test_copy_folder(server, mailbox):
    prop = f"<t:ExtendedProperty>{PROP}<t:Value>ACME-1</t:Value></t:ExtendedProperty>"
    [source] = create(server, mailbox, INBOX, "Source", extra=prop)
    [sub] = create(server, mailbox, fid(source), "Sub")
    [target] = create(server, mailbox, '<t:DistinguishedFolderId Id="drafts"/>', "Target")
    add_message(server, mailbox, source, "one", is_read=False)
    add_message(server, mailbox, source, "two", is_read=True)
    add_message(server, mailbox, sub, "three", is_read=False)

    root = move_or_copy(server, mailbox, "CopyFolder", fid(target), fid(source), fid(target), fid(sub),
                        '<t:DistinguishedFolderId Id="drafts"/>')
    assert codes(root) == ["NoError", "ErrorMoveCopyFailed", "NoError", "ErrorMoveCopyFailed"]  # Target is in Drafts
    copy, sub_copy = ids_of(root)
    [drafts_copy] = ids_of(move_or_copy(server, mailbox, "CopyFolder", INBOX, '<t:DistinguishedFolderId Id="drafts"/>'))
    assert copy not in (source, sub)
    copied = info(server, mailbox, copy)
    assert (copied["DisplayName"], copied["TotalCount"], copied["UnreadCount"], copied["ChildFolderCount"],
            copied["ParentFolderId"]) == ("Source", "2", "1", "1", target)
    inner = find(server, mailbox, fid(copy), shape="AllProperties")
    assert names_in(inner) == ["Sub"]
    assert inner.find(".//t:Folders/t:Folder/t:TotalCount", NS).text == "1"
    tagged = get_folders(server, mailbox, fid(copy), shape="IdOnly", extra=PROP)
    assert tagged.find(".//t:ExtendedProperty/t:Value", NS).text == "ACME-1"
    assert info(server, mailbox, sub_copy)["TotalCount"] == "1"
    assert "DistinguishedFolderId" not in info(server, mailbox, drafts_copy)  # an ordinary folder named Drafts
    assert info(server, mailbox, drafts_copy)["DisplayName"] == "Drafts"
    assert info(server, mailbox, source)["TotalCount"] == "2"  # the source is untouched
    assert info(server, mailbox, target)["ChildFolderCount"] == "2"


# -- FindFolder and GetFolder ----------------------------------------------------------------------
def test_find_folder_traversal_paging_and_restriction(server, mailbox):
    [top] = create(server, mailbox, INBOX, "Top")
    create(server, mailbox, fid(top), "Alpha", "Beta", "Gamma")
    alpha = ids_of(find(server, mailbox, fid(top), shape="IdOnly"))[0]
    create(server, mailbox, fid(alpha), "Alpha one", "Alpha two")

    shallow = find(server, mailbox, fid(top))
    assert names_in(shallow) == ["Alpha", "Beta", "Gamma"]
    assert paging(shallow) == ("3", "3", "true")
    deep = find(server, mailbox, fid(top), traversal="Deep")
    expected = ["Alpha", "Alpha one", "Alpha two", "Beta", "Gamma"]
    assert names_in(deep) == expected

    pages = []
    for offset in (0, 2, 4):
        view = f'<m:IndexedPageFolderView MaxEntriesReturned="2" Offset="{offset}" BasePoint="Beginning"/>'
        page = find(server, mailbox, fid(top), traversal="Deep", view=view)
        pages.extend(names_in(page))
        last = "true" if offset == 4 else "false"
        assert paging(page) == (str(offset + len(names_in(page))), "5", last)
    assert pages == expected  # the pages slice the same depth-first listing
    beyond = find(server, mailbox, fid(top), view='<m:IndexedPageFolderView MaxEntriesReturned="5" Offset="9" '
                                                   'BasePoint="Beginning"/>')
    assert names_in(beyond) == [] and paging(beyond) == ("3", "3", "true")
    from_end = find(server, mailbox, fid(top), view='<m:IndexedPageFolderView MaxEntriesReturned="2" Offset="0" '
                                                     'BasePoint="End"/>')
    assert names_in(from_end) == ["Beta", "Gamma"]
    assert paging(from_end) == ("2", "3", "false")

    contains = ('<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">'
                '<t:FieldURI FieldURI="folder:DisplayName"/><t:Constant Value="ALPHA"/></t:Contains>')
    assert names_in(find(server, mailbox, fid(top), traversal="Deep", restriction=contains)) == [
        "Alpha", "Alpha one", "Alpha two"]
    equal = ('<t:IsEqualTo><t:FieldURI FieldURI="folder:DisplayName"/><t:FieldURIOrConstant>'
             '<t:Constant Value="Beta"/></t:FieldURIOrConstant></t:IsEqualTo>')
    found = find(server, mailbox, fid(top), traversal="Deep", restriction=equal)
    assert names_in(found) == ["Beta"] and paging(found) == ("1", "1", "true")


def test_find_folder_shapes(server, mailbox):
    [top] = create(server, mailbox, INBOX, "Shapes")
    create(server, mailbox, fid(top), "Cal", kind="CalendarFolder")
    create(server, mailbox, fid(top), "Mail")

    def fields(shape: str, extra: str = "") -> dict[str, list[str]]:
        """Element type -> the property elements, in order, of the two child folders."""
        nodes = find(server, mailbox, fid(top), shape=shape, extra=extra).findall(".//t:Folders/*", NS)
        return {etree.QName(n).localname: [etree.QName(c).localname for c in n] for n in nodes}

    assert fields("IdOnly") == {"CalendarFolder": ["FolderId"], "Folder": ["FolderId"]}
    assert fields("IdOnly", '<t:FieldURI FieldURI="folder:FolderClass"/>') == {
        "CalendarFolder": ["FolderId", "FolderClass"], "Folder": ["FolderId", "FolderClass"]}
    assert fields("Default") == {
        "CalendarFolder": ["FolderId", "DisplayName", "TotalCount", "ChildFolderCount"],
        "Folder": ["FolderId", "DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount"]}
    common = ["FolderId", "ParentFolderId", "FolderClass", "DisplayName", "TotalCount", "ChildFolderCount"]
    assert fields("AllProperties") == {"CalendarFolder": common + ["EffectiveRights", "PermissionSet"],
                                       "Folder": common + ["EffectiveRights", "PermissionSet", "UnreadCount"]}
    assert fields("Default", '<t:FieldURI FieldURI="folder:ParentFolderId"/>')["Folder"] == [
        "FolderId", "ParentFolderId", "DisplayName", "TotalCount", "ChildFolderCount", "UnreadCount"]


def test_get_folder_of_mailboxes(server, server_store, mailbox):
    domain = mailbox.address.split("@", 1)[1]
    other = new_mailbox(server_store, domain, "bob")

    def inbox_of(address: str) -> str:
        return (f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{address}</t:EmailAddress>'
                "</t:Mailbox></t:DistinguishedFolderId>")

    root = get_folders(server, mailbox, inbox_of(mailbox.address), inbox_of(other.address),
                       inbox_of(f"nobody@{domain}"), inbox_of(mailbox.address.upper()), shape="Default")
    assert codes(root) == ["NoError", "ErrorAccessDenied", "ErrorNonExistentMailbox", "NoError"]
    assert names_in(root) == ["Inbox", "Inbox"]


def test_counts_follow_items_and_folders(server, mailbox):
    inbox = folder_id_of(server, mailbox, "inbox")
    [folder] = create(server, mailbox, INBOX, "Counted")
    add_message(server, mailbox, folder, "a", is_read=False)
    add_message(server, mailbox, folder, "b", is_read=False)
    add_message(server, mailbox, folder, "c", is_read=True)
    counted = info(server, mailbox, folder)
    assert (counted["TotalCount"], counted["UnreadCount"], counted["ChildFolderCount"]) == ("3", "2", "0")
    create(server, mailbox, fid(folder), "x", "y")
    assert info(server, mailbox, folder)["ChildFolderCount"] == "2"
    assert info(server, mailbox, inbox)["ChildFolderCount"] == "1"

    drafts = folder_id_of(server, mailbox, "drafts")
    assert codes(move_or_copy(server, mailbox, "MoveFolder", fid(drafts), fid(folder))) == ["NoError"]
    assert info(server, mailbox, inbox)["ChildFolderCount"] == "0"
    assert info(server, mailbox, drafts)["ChildFolderCount"] == "1"
    moved = info(server, mailbox, folder)
    assert (moved["TotalCount"], moved["UnreadCount"], moved["ParentFolderId"]) == ("3", "2", drafts)
