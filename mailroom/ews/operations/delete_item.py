"""DeleteItem: HardDelete (gone), SoftDelete (to Recoverable Items, out of the user's sight) or
MoveToDeletedItems (to Deleted Items; an item already there is soft-deleted). Deleting an
occurrence of a recurring calendar item removes it from its series."""

from lxml import etree

from mailroom.access.permissions import Access

from .. import calendar, meetings
from ..errors import EWSError
from ..folders import disposal, trash_id
from ..items import element_for_class
from ..service import Operation, choice, require
from ..xml import m


class DeleteItem(Operation):
    name = "DeleteItem"

    def execute(self, request: etree._Element) -> etree._Element:
        delete_type = disposal(request)
        cancellations = choice(request, "SendMeetingCancellations", "CalendarItemCreateOrDeleteOperationType")
        occurrences = choice(request, "AffectedTaskOccurrences", "AffectedTaskOccurrencesType")
        store = self.ctx.store
        root, messages = self.response()

        def one(id_el: etree._Element, _msg: etree._Element) -> None:
            mailbox, item = self.item_from(id_el, Access.DELETE, body=False, attachments=False)
            kind = element_for_class(item.item_class, self.ctx)
            if kind == "CalendarItem" and cancellations is None:
                raise EWSError("ErrorSendMeetingCancellationsRequired",
                               "SendMeetingCancellations is required to delete calendar items.")
            if kind == "Task" and occurrences is None:
                raise EWSError("ErrorAffectedTaskOccurrencesRequired",
                               "AffectedTaskOccurrences is required to delete tasks.")
            if calendar.is_occurrence(item):  # an occurrence is deleted from its series
                if meetings.is_organizer(item):
                    meetings.cancel_all(self, mailbox, item, cancellations)  # with its RECURRENCE-ID
                calendar.discard(store, mailbox, item)
                return
            if kind == "CalendarItem" and meetings.is_organizer(item):
                meetings.cancel_all(self, mailbox, item, cancellations)
            target = trash_id(store, mailbox, delete_type)
            if delete_type == "MoveToDeletedItems" and item.folder_id == target:
                target = trash_id(store, mailbox, "SoftDelete")
            store.items.move_or_delete(mailbox, item.id, target)

        self.each(messages, list(require(request, m("ItemIds"))), one)
        return root
