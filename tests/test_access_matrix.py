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
from mailroom.store.model import ItemChanges, Mailbox, NewItem

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


PRIVATE_CALLERS = ("owner", "impersonator", "delegate with ViewPrivateItems", "delegate without ViewPrivateItems")


def find_page(owner: Mailbox, folder: str, offset: int, limit: int) -> str:
    return (f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
            f'<m:IndexedPageItemView MaxEntriesReturned="{limit}" Offset="{offset}" BasePoint="Beginning"/>'
            f"<m:ParentFolderIds>{folder_ref(owner, folder)}</m:ParentFolderIds></m:FindItem>")


def calendar_view(owner: Mailbox) -> str:
    return ('<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
            '<m:CalendarView StartDate="2030-01-01T00:00:00Z" EndDate="2030-01-02T00:00:00Z"/>'
            f"<m:ParentFolderIds>{folder_ref(owner, 'calendar')}</m:ParentFolderIds></m:FindItem>")


def free_busy(owner: Mailbox) -> str:
    return ("<m:GetUserAvailabilityRequest><t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias>"
            "<t:Time>02:00:00</t:Time><t:DayOrder>5</t:DayOrder><t:Month>10</t:Month><t:DayOfWeek>Sunday"
            "</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias><t:Time>02:00:00</t:Time>"
            "<t:DayOrder>1</t:DayOrder><t:Month>4</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:DaylightTime>"
            "</t:TimeZone><m:MailboxDataArray><t:MailboxData><t:Email><t:Address>"
            f"{owner.address}</t:Address></t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData>"
            "</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow><t:StartTime>2030-01-01T00:00:00"
            "</t:StartTime><t:EndTime>2030-01-02T00:00:00</t:EndTime></t:TimeWindow>"
            "<t:MergedFreeBusyIntervalInMinutes>60</t:MergedFreeBusyIntervalInMinutes>"
            "<t:RequestedView>FreeBusy</t:RequestedView></t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>")


def test_private_items(server, server_store):
    """Private items are shown to the owner, an impersonator and a delegate given ViewPrivateItems;
    to any other delegate they are absent: from views and their totals and pages, from GetItem and
    SyncFolderItems; free/busy still shows their time as busy."""
    store = server_store
    domain = new_domain(store)
    owner = new_mailbox(store, domain, "owner")
    sees, blind = new_mailbox(store, domain, "sees"), new_mailbox(store, domain, "blind")
    for delegate, view_private in ((sees, "true"), (blind, "false")):
        body = (f"<m:AddDelegate><m:Mailbox><t:EmailAddress>{owner.address}</t:EmailAddress></m:Mailbox>"
                f"<m:DelegateUsers><t:DelegateUser><t:UserId><t:PrimarySmtpAddress>{delegate.address}"
                "</t:PrimarySmtpAddress></t:UserId><t:DelegatePermissions><t:CalendarFolderPermissionLevel>Editor"
                "</t:CalendarFolderPermissionLevel><t:InboxFolderPermissionLevel>Reviewer"
                "</t:InboxFolderPermissionLevel></t:DelegatePermissions>"
                f"<t:ViewPrivateItems>{view_private}</t:ViewPrivateItems></t:DelegateUser></m:DelegateUsers>"
                "</m:AddDelegate>")
        root = parse(post(server.ews_url, envelope(body), owner.address, PASSWORD))
        assert [c.text for c in root.iterfind(".//m:ResponseCode", NS)] == ["NoError", "NoError"]
    inside = new_mailbox(store, domain, "svc")
    store.directory.grant_impersonation(inside.address, f"mailboxes:{owner.address}")
    header = ("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>"
              f"{owner.address}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>")
    callers = dict(zip(PRIVATE_CALLERS, (Caller("owner", owner, owner), Caller("impersonator", inside, owner, header),
                                         Caller("sees", sees, sees), Caller("blind", blind, blind)), strict=True))

    inbox = store.folders.distinguished(owner, "inbox").id
    made = {}
    for n, sensitivity in enumerate(("Normal", "Private", "Personal", "Private", "Confidential")):
        made[n] = store.items.create(owner, inbox, NewItem(props={
            "Subject": f"m{n}", "Sensitivity": sensitivity, "DateTimeReceived": f"2030-01-01T0{n}:00:00Z"})).id
    calendar = store.folders.distinguished(owner, "calendar").id
    for subject, sensitivity in (("open", "Normal"), ("secret", "Private")):
        start, end = ("2030-01-01T09:00:00Z", "2030-01-01T10:00:00Z") if subject == "open" else (
            "2030-01-01T14:00:00Z", "2030-01-01T15:00:00Z")
        store.items.create(owner, calendar, NewItem(props={
            "ItemClass": "IPM.Appointment", "Subject": subject, "Sensitivity": sensitivity, "Start": start,
            "End": end, "_SpanStart": start, "_SpanEnd": end, "LegacyFreeBusyStatus": "Busy"}))

    def ask(caller: Caller, body: str):  # noqa: ANN202
        return parse(post(server.ews_url, envelope(body, header_extra=caller.header), caller.mailbox.address,
                          PASSWORD))

    def page(caller: Caller, offset: int, limit: int) -> tuple[str, list[str]]:
        root = ask(caller, find_page(owner, "inbox", offset, limit))
        listed = [ids.decode(i.get("Id")).row_id for i in root.iterfind(".//t:Items/t:Message/t:ItemId", NS)]
        return root.find(".//m:RootFolder", NS).get("TotalItemsInView"), listed

    private = {made[1], made[3]}
    newest_first = [made[n] for n in (4, 3, 2, 1, 0)]
    for name, caller in callers.items():
        hidden = name == "delegate without ViewPrivateItems"
        visible = [i for i in newest_first if not (hidden and i in private)]
        assert page(caller, 0, 10) == (str(len(visible)), visible), name
        assert page(caller, 1, 2) == (str(len(visible)), visible[1:3]), name  # pages skip nothing visible
        codes = {outcome(server, caller, request("GetItem", owner, "inbox", i)) for i in private}
        assert codes == {"ErrorAccessDenied" if hidden else "NoError"}, name
        sync = ask(caller, request("SyncFolderItems", owner, "inbox", 0))
        synced = {ids.decode(i.get("Id")).row_id for i in sync.iterfind(".//m:Changes/t:Create/*/t:ItemId", NS)}
        assert synced == set(visible), name
        subjects = [s.text for s in ask(caller, calendar_view(owner).replace(
            "IdOnly", "Default")).iterfind(".//t:CalendarItem/t:Subject", NS)]
        assert subjects == (["open"] if hidden else ["open", "secret"]), name
        busy = [e.findtext("t:StartTime", namespaces=NS)
                for e in ask(caller, free_busy(owner)).iterfind(".//t:CalendarEvent", NS)]
        assert busy == ["2030-01-01T09:00:00", "2030-01-01T14:00:00"], name  # the private time is busy too
        rights = ask(caller, request("GetFolder", owner, "inbox", 0)).find(".//t:EffectiveRights", NS)
        assert rights.findtext("t:ViewPrivateItems", namespaces=NS) == ("false" if hidden else "true"), name

    # A change that makes a synced item private takes it away from the blind delegate.
    blind_caller = callers["delegate without ViewPrivateItems"]
    state = ask(blind_caller, request("SyncFolderItems", owner, "inbox", 0)).findtext(".//m:SyncState",
                                                                                      namespaces=NS)
    store.items.update(owner, made[0], ItemChanges(set_props={"Sensitivity": "Private"}))
    again = ask(blind_caller, request("SyncFolderItems", owner, "inbox", 0).replace(
        "</m:SyncFolderId>", f"</m:SyncFolderId><m:SyncState>{state}</m:SyncState>"))
    deleted = [ids.decode(i.get("Id")).row_id for i in again.iterfind(".//m:Changes/t:Delete/t:ItemId", NS)]
    assert deleted == [made[0]]
    assert again.find(".//m:Changes/t:Create", NS) is None and again.find(".//m:Changes/t:Update", NS) is None
