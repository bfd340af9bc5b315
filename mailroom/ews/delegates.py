"""What the delegate management operations share ([MS-OXWSDLGM]): the owner's mailbox, DelegateUser
in and out of XML, the delegate folders and the levels a delegate can hold on them.

A delegate's access is nothing but folder permission entries on the owner's Calendar, Tasks, Inbox,
Contacts, Notes and Journal folders (read back as None/Reviewer/Author/Editor, or Custom when
changed some other way) plus send-on-behalf, which being a delegate grants."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from mailroom.access.permissions import Right, level_of, level_rights
from mailroom.store.directory import mailbox_sid
from mailroom.store.model import Mailbox
from mailroom.store.permissions import Delegate

from .errors import EWSError, SOAPFault
from .permissions import resolve_user
from .schema import schema
from .service import Operation, boolean, require
from .xml import bool_text, local, m, sub, t

# DelegatePermissions elements (schema order) and the distinguished folder each one is about.
FOLDERS = {"CalendarFolderPermissionLevel": "calendar", "TasksFolderPermissionLevel": "tasks",
           "InboxFolderPermissionLevel": "inbox", "ContactsFolderPermissionLevel": "contacts",
           "NotesFolderPermissionLevel": "notes", "JournalFolderPermissionLevel": "journal"}
_SETTABLE = ("None", "Reviewer", "Author", "Editor")
MESSAGE = "DelegateUserResponseMessageType"


@dataclass
class DelegateRequest:
    """One DelegateUser of AddDelegate/UpdateDelegate: who, and what the request sets (None: not named)."""

    mailbox: Mailbox
    levels: dict[str, str] = field(default_factory=dict)  # distinguished folder -> level
    receive_copies: bool | None = None
    view_private: bool | None = None


class DelegateOperation(Operation):
    """Delegate operations answer with one ResponseMessage of their own (top-level error codes)
    holding per-delegate DelegateUserResponseMessageType messages."""

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()
        root.remove(messages)  # the per-delegate messages come after this message's own code
        try:
            owner = self.owner(request)
        except EWSError as err:
            root.set("ResponseClass", "Error")
            sub(root, m("MessageText"), err.message)
            sub(root, m("ResponseCode"), err.code)
            sub(root, m("DescriptiveLinkKey"), "0")
            return root
        root.set("ResponseClass", "Success")
        sub(root, m("ResponseCode"), "NoError")
        self.run(request, owner, root)
        return root

    def run(self, request: etree._Element, owner: Mailbox, root: etree._Element) -> None:
        raise NotImplementedError

    def owner(self, request: etree._Element) -> Mailbox:
        """The mailbox whose delegates are managed: only its owner (or whoever impersonates the
        owner) may; anyone else gets ErrorAccessDenied."""
        address = (require(request, m("Mailbox")).findtext(t("EmailAddress")) or "").strip()
        if not address:
            raise EWSError("ErrorInvalidSmtpAddress", "The Mailbox needs an EmailAddress.")
        mailbox = self.open_mailbox(address)
        if not self.ctx.identity.may_open(mailbox):
            raise EWSError("ErrorAccessDenied", "Only the mailbox owner can manage its delegates.")
        return mailbox

    def delegate_folders(self, owner: Mailbox) -> dict[str, int]:
        """The owner's delegate folders: distinguished name -> folder id."""
        known = self.ctx.store.folders.distinguished_ids(owner)
        return {name: known[name] for name in FOLDERS.values() if name in known}

    def user(self, user_id: etree._Element | None, owner: Mailbox) -> Mailbox:
        """The mailbox a UserId names: ErrorInvalidDelegateUserId without an address or SID,
        ErrorDelegateNoUser when no mailbox has it, ErrorDelegateCannotAddOwner for the owner
        (who is never a delegate of their own mailbox)."""
        if user_id is None or not ((user_id.findtext(t("PrimarySmtpAddress")) or "").strip()
                                   or (user_id.findtext(t("SID")) or "").strip()):
            raise EWSError("ErrorInvalidDelegateUserId", "A UserId needs a PrimarySmtpAddress or SID.")
        found = resolve_user(user_id, self.ctx.store)
        if found is None:
            raise EWSError("ErrorDelegateNoUser", "The delegate is not a mailbox of this server.")
        if found.id == owner.id:
            raise EWSError("ErrorDelegateCannotAddOwner", "The mailbox owner cannot be its own delegate.")
        return found

    def parse_delegate(self, node: etree._Element, owner: Mailbox) -> DelegateRequest:
        found = DelegateRequest(self.user(node.find(t("UserId")), owner))
        for child in node:
            name = local(child.tag)
            if name == "DelegatePermissions":
                for level_el in child:
                    level = (level_el.text or "").strip()
                    if level not in _SETTABLE:
                        raise EWSError("ErrorInvalidDelegatePermission",
                                       f"{local(level_el.tag)} cannot be set to {level}.")
                    found.levels[FOLDERS[local(level_el.tag)]] = level
            elif name == "ReceiveCopiesOfMeetingMessages":
                found.receive_copies = boolean(child.text, name)
            elif name == "ViewPrivateItems":
                found.view_private = boolean(child.text, name)
        return found

    def folder_rights(self, owner: Mailbox, levels: dict[str, str]) -> dict[int, Right]:
        """The rights each named level gives, by folder id of the owner's delegate folders."""
        folders = self.delegate_folders(owner)
        return {folders[name]: level_rights(level, calendar=name == "calendar")
                for name, level in levels.items() if name in folders}

    def delegates(self, owner: Mailbox) -> list[Delegate]:
        return self.ctx.store.permissions.delegates(owner, self.delegate_folders(owner))

    def render(self, msg: etree._Element, delegate: Delegate, with_permissions: bool) -> None:
        node = sub(msg, m("DelegateUser"))
        user = sub(node, t("UserId"))
        sub(user, t("SID"), mailbox_sid(delegate.mailbox.guid))
        sub(user, t("PrimarySmtpAddress"), delegate.mailbox.address)
        sub(user, t("DisplayName"), delegate.mailbox.display_name)
        if with_permissions:
            levels = sub(node, t("DelegatePermissions"))
            for element, folder in FOLDERS.items():
                if folder in delegate.folders:
                    level = level_of(delegate.folders[folder], calendar=folder == "calendar")
                    sub(levels, t(element), level if level in _SETTABLE else "Custom")
        sub(node, t("ReceiveCopiesOfMeetingMessages"), bool_text(delegate.receive_copies))
        sub(node, t("ViewPrivateItems"), bool_text(delegate.view_private))

    def render_current(self, msg: etree._Element, owner: Mailbox, delegate: Mailbox) -> None:
        """The delegate as now stored, with its permissions (AddDelegate/UpdateDelegate answers)."""
        current = next(d for d in self.delegates(owner) if d.mailbox.id == delegate.id)
        self.render(msg, current, with_permissions=True)

    def messages(self, root: etree._Element) -> etree._Element:
        return sub(root, m("ResponseMessages"))


def deliver_meeting_requests(request: etree._Element) -> str | None:
    """The DeliverMeetingRequests a request sets, if any (checked against the schema's values)."""
    node = request.find(m("DeliverMeetingRequests"))
    if node is None:
        return None
    value = (node.text or "").strip()
    if value not in schema().enumeration("DeliverMeetingRequestsType"):
        raise SOAPFault("ErrorSchemaValidation", f"DeliverMeetingRequests {value!r} is not valid.")
    return value
