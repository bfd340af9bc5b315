"""The access matrix: every (caller, target folder, operation) combination is either allowed as
documented (docs/admin-guide.md, "Delegates and folder permissions") or refused with
ErrorAccessDenied - no other outcome. The one documented exception is an impersonating account
outside its scope: its ExchangeImpersonation header is refused as a whole with
ErrorImpersonateUserDenied before any folder is looked at.

The owner's Inbox is delegated (each delegate holds the level its name says, "none" holds Editor on
the Calendar only); Drafts is delegated to nobody. The expectations are written out here, not
derived from the server's own permission code."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from mailroom.store import ids
from mailroom.store.model import Mailbox, NewItem

from .conftest import PASSWORD, new_domain, new_mailbox
from .soap import NS, envelope, fault_code, parse, post

READS = {"GetFolder", "FindFolder", "FindItem", "GetItem", "SyncFolderItems"}
# What each delegate level allows on the delegated folder: Reviewer reads; Author also creates and
# edits or deletes its own items; Editor edits and deletes any item.
LEVEL_ALLOWS = {
    "None": set(),
    "Reviewer": READS,
    "Author": READS | {"CreateItem", "CopyItem", "UpdateOwnItem", "DeleteOwnItem", "MoveOwnItem"},
    "Editor": READS | {"CreateItem", "CopyItem", "UpdateOwnItem", "DeleteOwnItem", "MoveOwnItem", "UpdateItem",
                       "DeleteItem", "MoveItem", "CreateAttachment"},
}
OPERATIONS = ("GetFolder", "FindFolder", "FindItem", "GetItem", "SyncFolderItems", "CreateItem", "CopyItem",
              "UpdateItem", "UpdateOwnItem", "DeleteItem", "DeleteOwnItem", "MoveItem", "MoveOwnItem",
              "CreateAttachment")
ALL = set(OPERATIONS)


@dataclass
class Caller:
    name: str
    mailbox: Mailbox  # who authenticates
    acts_as: Mailbox  # whose items count as "own" (the impersonated owner for impersonation)
    header: str = ""  # an ExchangeImpersonation header, if any

    def expected(self, operation: str, folder: str, level: str | None) -> str:
        if self.name == "impersonator out of scope":
            return "ErrorImpersonateUserDenied"
        if self.name in ("owner", "impersonator in scope"):
            allowed = ALL
        elif level is not None and folder == "inbox":
            allowed = LEVEL_ALLOWS[level]
        else:
            allowed = set()
        return "NoError" if operation in allowed else "ErrorAccessDenied"


def folder_ref(owner: Mailbox, folder: str) -> str:
    return (f'<t:DistinguishedFolderId Id="{folder}"><t:Mailbox><t:EmailAddress>{owner.address}</t:EmailAddress>'
            "</t:Mailbox></t:DistinguishedFolderId>")


def item_ref(owner: Mailbox, item_id: int) -> str:
    return f'<t:ItemId Id="{ids.item_id(owner.guid, item_id)}"/>'


def request(operation: str, owner: Mailbox, folder: str, item: int) -> str:
    """The SOAP body of one matrix cell; ``item`` is the item it works on (when it works on one)."""
    where, it = folder_ref(owner, folder), item_ref(owner, item)
    shape = "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
    kind = operation.replace("Own", "")
    bodies = {
        "GetFolder": f"<m:GetFolder><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape></m:FolderShape>"
                     f"<m:FolderIds>{where}</m:FolderIds></m:GetFolder>",
        "FindFolder": '<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>'
                      f"</m:FolderShape><m:ParentFolderIds>{where}</m:ParentFolderIds></m:FindFolder>",
        "FindItem": f'<m:FindItem Traversal="Shallow">{shape}<m:ParentFolderIds>{where}</m:ParentFolderIds>'
                    "</m:FindItem>",
        "GetItem": f"<m:GetItem>{shape}<m:ItemIds>{it}</m:ItemIds></m:GetItem>",
        "SyncFolderItems": f"<m:SyncFolderItems>{shape}<m:SyncFolderId>{where}</m:SyncFolderId>"
                           "<m:MaxChangesReturned>10</m:MaxChangesReturned></m:SyncFolderItems>",
        "CreateItem": f'<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>{where}'
                      "</m:SavedItemFolderId><m:Items><t:Message><t:Subject>new</t:Subject></t:Message>"
                      "</m:Items></m:CreateItem>",
        "CopyItem": f"<m:CopyItem><m:ToFolderId>{where}</m:ToFolderId><m:ItemIds>{it}</m:ItemIds></m:CopyItem>",
        "MoveItem": f"<m:MoveItem><m:ToFolderId>{where}</m:ToFolderId><m:ItemIds>{it}</m:ItemIds></m:MoveItem>",
        "UpdateItem": '<m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly">'
                      f"<m:ItemChanges><t:ItemChange>{it}<t:Updates><t:SetItemField>"
                      '<t:FieldURI FieldURI="item:Subject"/><t:Message><t:Subject>changed</t:Subject></t:Message>'
                      "</t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>",
        "DeleteItem": f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{it}</m:ItemIds></m:DeleteItem>',
        "CreateAttachment": f'<m:CreateAttachment><m:ParentItemId Id="{ids.item_id(owner.guid, item)}"/>'
                            "<m:Attachments><t:FileAttachment><t:Name>a.txt</t:Name>"
                            f"<t:Content>{base64.b64encode(b'hi').decode()}</t:Content></t:FileAttachment>"
                            "</m:Attachments></m:CreateAttachment>",
    }
    return bodies[kind]


def outcome(server, caller: Caller, body: str) -> str:  # noqa: ANN001
    """The one outcome of a call: the single response code, or the fault code."""
    response = post(server.ews_url, envelope(body, header_extra=caller.header), caller.mailbox.address, PASSWORD)
    root = parse(response)
    fault = fault_code(root)
    if fault is not None:
        return fault
    found = {c.text for c in root.iterfind(".//m:ResponseMessages/*/m:ResponseCode", NS)}
    return found.pop() if len(found) == 1 else f"mixed {sorted(found)}"


def add_delegate(server, owner: Mailbox, delegate: Mailbox, folder: str, level: str) -> None:  # noqa: ANN001
    body = (f"<m:AddDelegate><m:Mailbox><t:EmailAddress>{owner.address}</t:EmailAddress></m:Mailbox>"
            f"<m:DelegateUsers><t:DelegateUser><t:UserId><t:PrimarySmtpAddress>{delegate.address}"
            f"</t:PrimarySmtpAddress></t:UserId><t:DelegatePermissions><t:{folder}FolderPermissionLevel>{level}"
            f"</t:{folder}FolderPermissionLevel></t:DelegatePermissions></t:DelegateUser></m:DelegateUsers>"
            "</m:AddDelegate>")
    root = parse(post(server.ews_url, envelope(body), owner.address, PASSWORD))
    assert [c.text for c in root.iterfind(".//m:ResponseCode", NS)] == ["NoError", "NoError"]


def test_access_matrix(server, server_store):
    store = server_store
    domain = new_domain(store)
    owner = new_mailbox(store, domain, "owner")
    other = new_mailbox(store, domain, "other")
    callers = [Caller("owner", owner, owner)]
    levels: dict[str, str] = {}
    for level in LEVEL_ALLOWS:
        delegate = new_mailbox(store, domain, level.lower())
        # "None" still is a delegate (of the Calendar), with no rights on the Inbox.
        add_delegate(server, owner, delegate, "Calendar" if level == "None" else "Inbox",
                     "Editor" if level == "None" else level)
        callers.append(Caller(f"delegate {level}", delegate, delegate))
        levels[f"delegate {level}"] = level
    inside, outside = new_mailbox(store, domain, "svc-in"), new_mailbox(store, domain, "svc-out")
    store.directory.grant_impersonation(inside.address, f"mailboxes:{owner.address}")
    store.directory.grant_impersonation(outside.address, f"mailboxes:{other.address}")
    header = ("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>"
              f"{owner.address}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>")
    callers += [Caller("impersonator in scope", inside, owner, header),
                Caller("impersonator out of scope", outside, owner, header),
                Caller("stranger", new_mailbox(store, domain, "stranger"), new_mailbox(store, domain, "x"))]

    wrong = []
    calls = 0
    for folder in ("inbox", "drafts"):
        folder_id = store.folders.distinguished(owner, folder).id
        for caller in callers:
            for operation in OPERATIONS:
                creator = caller.acts_as.id if "Own" in operation else None
                item = store.items.create(owner, folder_id, NewItem(props={"Subject": "target"}, created_by=creator))
                got = outcome(server, caller, request(operation, owner, folder, item.id))
                calls += 1
                want = caller.expected(operation, folder, levels.get(caller.name))
                if got != want:
                    wrong.append(f"{caller.name} {operation} in {folder}: {got}, expected {want}")
    assert wrong == []
    assert calls == 2 * len(callers) * len(OPERATIONS)

    # Refused calls changed nothing: the only items in Drafts are the matrix's own targets and what
    # the owner and the impersonator created, copied or moved there.
    drafts = store.folders.distinguished(owner, "drafts")
    subjects = [i.props.get("Subject") for i in store.items.find(owner, drafts.id)[0]]
    assert subjects.count("new") == 2  # CreateItem by the owner and the impersonator only
