"""MarkAsJunk (Exchange 2013): marking an item as junk blocks its sender (the mailbox's junk
lists, content/junk.py: later mail from it is delivered to Junk Email), marking it as not junk
unblocks the sender; with MoveItem the item moves to Junk Email, or back to the Inbox, and the
response carries its new id (MovedItemId)."""

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import junk, recipients

from ..errors import EWSError
from ..items import item_id_attrs
from ..service import Operation, boolean, require
from ..xml import local, m, sub, t


class MarkAsJunk(Operation):
    name = "MarkAsJunk"
    min_version = "Exchange2013"

    def execute(self, request: etree._Element) -> etree._Element:
        is_junk = boolean(request.get("IsJunk"), "IsJunk")
        move = boolean(request.get("MoveItem"), "MoveItem")
        root, messages = self.response()

        def one(id_el: etree._Element, msg: etree._Element) -> None:
            if id_el.tag != t("ItemId"):
                raise EWSError("ErrorInvalidOperation", f"{local(id_el.tag)} is not supported here.")
            mailbox, item = self.item_from(id_el, Access.DELETE if move else Access.READ)
            senders = tuple(a.email for a in recipients.parse(item.props.get("From")) if a.email)
            if senders and is_junk:
                junk.change(self.ctx.store, mailbox, block=senders)
            elif senders:
                junk.change(self.ctx.store, mailbox, unblock=senders)
            if not move:
                return
            folder = self.ctx.store.folders.distinguished(mailbox, "junkemail" if is_junk else "inbox")
            self.authorize(mailbox, folder.id, Access.CREATE)
            if item.folder_id != folder.id:
                item = self.ctx.store.items.move(mailbox, item.id, folder.id)
            sub(msg, m("MovedItemId"), **item_id_attrs(mailbox, item))

        self.each(messages, list(require(request, m("ItemIds"))), one)
        return root
