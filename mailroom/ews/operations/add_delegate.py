"""AddDelegate: the owner makes mailboxes its delegates, each with a level on the delegate folders
(written as folder permissions), ReceiveCopiesOfMeetingMessages and ViewPrivateItems."""

from lxml import etree

from mailroom.store import errors as store_errors
from mailroom.store.model import Mailbox

from ..delegates import MESSAGE, DelegateOperation, deliver_meeting_requests
from ..errors import EWSError
from ..service import require
from ..xml import m


class AddDelegate(DelegateOperation):
    name = "AddDelegate"
    min_version = "Exchange2007_SP1"

    def run(self, request: etree._Element, owner: Mailbox, root: etree._Element) -> None:
        users = list(require(request, m("DelegateUsers")))
        deliver = deliver_meeting_requests(request)
        store = self.ctx.store

        def one(node: etree._Element, msg: etree._Element) -> None:
            wanted = self.parse_delegate(node, owner)
            if all(level == "None" for level in wanted.levels.values()):
                raise EWSError("ErrorDelegateMissingConfiguration",
                               "A delegate needs a level other than None on at least one folder.")
            try:
                store.permissions.add_delegate(owner, wanted.mailbox, self.folder_rights(owner, wanted.levels),
                                               bool(wanted.receive_copies), bool(wanted.view_private))
            except store_errors.AlreadyExists as exc:
                raise EWSError("ErrorDelegateAlreadyExists", str(exc)) from exc
            self.render_current(msg, owner, wanted.mailbox)

        self.each(self.messages(root), users, one, MESSAGE)
        if deliver is not None:
            store.permissions.set_deliver_meeting_requests(owner, deliver)
