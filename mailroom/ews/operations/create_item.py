"""CreateItem: save items (SaveOnly), or send them (SendOnly / SendAndSaveCopy); a reply or forward
(response object) is composed from the item it answers first."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store import ids
from mailroom.store.model import Folder, Mailbox

from .. import calendar, meetings, tasks
from ..attachments import parse_attachments
from ..errors import EWSError, SOAPFault
from ..items import parse_item
from ..responses import compose, record, smart_response
from ..sending import send_new
from ..service import Operation, choice, require
from ..xml import local, m, sub, t

_DEFAULT_FOLDER = {"CalendarItem": "calendar", "Contact": "contacts", "DistributionList": "contacts",
                   "Task": "tasks"}


class CreateItem(Operation):
    name = "CreateItem"

    def execute(self, request: etree._Element) -> etree._Element:
        disposition = request.get("MessageDisposition")
        if disposition not in (None, "SaveOnly", "SendOnly", "SendAndSaveCopy"):
            raise SOAPFault("ErrorSchemaValidation", f"MessageDisposition {disposition!r} is not valid.")
        saved_el = request.find(m("SavedItemFolderId"))
        invitations = choice(request, "SendMeetingInvitations", "CalendarItemCreateOrDeleteOperationType")
        root, messages = self.response()

        def one(item_el: etree._Element, msg: etree._Element) -> None:
            kind = local(item_el.tag)
            if kind in meetings.HANDLED:
                self._meeting_response(item_el, disposition, saved_el, sub(msg, m("Items")))
                return
            smart = smart_response(kind)
            is_message = smart is not None or kind in ("Message", "MeetingMessage", "SharingMessage")
            if is_message and disposition is None:
                raise EWSError("ErrorMessageDispositionRequired",
                               "MessageDisposition is required when creating messages.")
            response = compose(self, item_el, smart) if smart is not None else None
            if response is not None:
                kind, new = "Message", response.new
            else:
                new = parse_item(item_el, self.ctx, parse_attachments)
            new.created_by = self.ctx.mailbox.id  # for the "Owned" rights of delegates
            items = sub(msg, m("Items"))
            if is_message and disposition in ("SendOnly", "SendAndSaveCopy"):
                saved = None
                if disposition == "SendAndSaveCopy":
                    saved = self._folder(saved_el, "sentitems")
                send_new(self.ctx, new, saved)  # Exchange answers a send with an empty Items element
                if response is not None:
                    record(self.ctx, response)
                return
            if is_message:
                new.props.setdefault("IsDraft", True)
                new.props.setdefault("IsRead", True)
            mailbox, folder = self._folder(saved_el, _DEFAULT_FOLDER.get(kind, "drafts"))
            inviting = False
            if kind == "CalendarItem":
                calendar.normalise(new.props, self.ctx, mailbox, creating=True)
                inviting = meetings.prepare(new.props, invitations, None)
            elif kind == "Task":
                tasks.normalise(new.props, {}, self.ctx.tz)
            created = self.ctx.store.items.create(mailbox, folder.id, new)
            if inviting:
                meetings.invite(self, mailbox, created, invitations or "SendToNone", None)
            node = sub(items, t(kind))
            sub(node, t("ItemId"), Id=ids.item_id(mailbox.guid, created.id),
                ChangeKey=ids.change_key(ids.CHANGEKEY_CALENDAR if kind == "CalendarItem" else ids.CHANGEKEY_MESSAGE,
                                         mailbox.database_guid, created.change_number))

        self.each(messages, list(require(request, m("Items"))), one)
        return root

    def _meeting_response(self, node: etree._Element, disposition: str | None, saved_el: etree._Element | None,
                          items: etree._Element) -> None:
        """AcceptItem, TentativelyAcceptItem, DeclineItem, CancelCalendarItem, RemoveItem."""
        kind = local(node.tag)
        if kind == "RemoveItem":
            meetings.remove(self, node)
            return
        if disposition is None:
            raise EWSError("ErrorMessageDispositionRequired", f"MessageDisposition is required for {kind}.")
        if kind == "CancelCalendarItem":
            meetings.cancel(self, node, disposition, saved_el)
        else:
            meetings.respond(self, node, disposition, saved_el, items)

    def _folder(self, saved_el: etree._Element | None, default: str) -> tuple[Mailbox, Folder]:
        if saved_el is not None and len(saved_el):
            return self.folder_from(saved_el[0], Access.CREATE)
        return self.ctx.mailbox, self.ctx.store.folders.distinguished(self.ctx.mailbox, default)
