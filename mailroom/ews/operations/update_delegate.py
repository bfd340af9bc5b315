"""UpdateDelegate: change the levels and flags the request names for existing delegates, and the
mailbox's DeliverMeetingRequests; what is not named stays as it is."""

from lxml import etree

from mailroom.store import errors as store_errors
from mailroom.store.model import Mailbox

from ..delegates import MESSAGE, DelegateOperation, deliver_meeting_requests
from ..errors import EWSError
from ..xml import m


class UpdateDelegate(DelegateOperation):
    name = "UpdateDelegate"
    min_version = "Exchange2007_SP1"

    def run(self, request: etree._Element, owner: Mailbox, root: etree._Element) -> None:
        users = request.find(m("DelegateUsers"))
        deliver = deliver_meeting_requests(request)
        store = self.ctx.store

        def one(node: etree._Element, msg: etree._Element) -> None:
            wanted = self.parse_delegate(node, owner)
            try:
                store.permissions.update_delegate(owner, wanted.mailbox, self.folder_rights(owner, wanted.levels),
                                                  wanted.receive_copies, wanted.view_private)
            except store_errors.NotFound as exc:
                raise EWSError("ErrorNotDelegate", str(exc)) from exc
            self.render_current(msg, owner, wanted.mailbox)

        if users is not None:
            self.each(self.messages(root), list(users), one, MESSAGE)
        if deliver is not None:
            store.permissions.set_deliver_meeting_requests(owner, deliver)
