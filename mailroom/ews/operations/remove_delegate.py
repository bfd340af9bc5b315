"""RemoveDelegate: the owner takes delegates away, with their permissions on the delegate folders."""

from lxml import etree

from mailroom.store import errors as store_errors
from mailroom.store.model import Mailbox

from ..delegates import MESSAGE, DelegateOperation
from ..errors import EWSError
from ..service import require
from ..xml import m


class RemoveDelegate(DelegateOperation):
    name = "RemoveDelegate"
    min_version = "Exchange2007_SP1"

    def run(self, request: etree._Element, owner: Mailbox, root: etree._Element) -> None:
        folders = list(self.delegate_folders(owner).values())

        def one(user_id: etree._Element, _msg: etree._Element) -> None:
            delegate = self.user(user_id, owner)
            try:
                self.ctx.store.permissions.remove_delegate(owner, delegate, folders)
            except store_errors.NotFound as exc:
                raise EWSError("ErrorNotDelegate", str(exc)) from exc

        self.each(self.messages(root), list(require(request, m("UserIds"))), one, MESSAGE)
