"""GetDelegate: the mailbox's delegates (all, or those UserIds names), with their folder levels when
IncludePermissions is true, and the mailbox's DeliverMeetingRequests."""

from lxml import etree

from mailroom.store.model import Mailbox

from ..delegates import MESSAGE, DelegateOperation
from ..errors import EWSError
from ..service import boolean
from ..xml import m, sub


class GetDelegate(DelegateOperation):
    name = "GetDelegate"
    min_version = "Exchange2007_SP1"

    def run(self, request: etree._Element, owner: Mailbox, root: etree._Element) -> None:
        with_permissions = boolean(request.get("IncludePermissions"), "IncludePermissions")
        current = {d.mailbox.id: d for d in self.delegates(owner)}
        asked = request.find(m("UserIds"))
        if asked is not None:
            def one(user_id: etree._Element, msg: etree._Element) -> None:
                found = current.get(self.user(user_id, owner).id)
                if found is None:
                    raise EWSError("ErrorNotDelegate", "The user is not a delegate of this mailbox.")
                self.render(msg, found, with_permissions)

            self.each(self.messages(root), list(asked), one, MESSAGE)
        elif current:
            messages = self.messages(root)
            for delegate in current.values():
                self.render(self.success(messages, MESSAGE), delegate, with_permissions)
        sub(root, m("DeliverMeetingRequests"), self.ctx.store.permissions.deliver_meeting_requests(owner))
