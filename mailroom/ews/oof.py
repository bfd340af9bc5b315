"""What GetUserOofSettings and SetUserOofSettings share. Their body elements end in ``Request``
and their responses carry one bare ``m:ResponseMessage`` (no ResponseMessages wrapper), so they
build the response element themselves ([MS-OXWOOF])."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from mailroom.store import errors as store_errors
from mailroom.store.model import Mailbox

from .errors import EWSError, SOAPFault
from .service import Operation, require, store_error
from .wsdl import operations
from .xml import M, T, m, t

MESSAGE = "ResponseMessage"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"  # a ReplyBody's culture


class OofOperation(Operation):
    """Base of the two OOF operations (not registered itself: it has no name)."""

    def respond(self, request: etree._Element, handle: Callable[[Mailbox, etree._Element], None]) -> etree._Element:
        """The operation's response with one message; ``handle`` gets the requested mailbox and
        the response element to append to after a Success message, and raises EWSError to fail."""
        tag = m(operations()[self.name])
        root = etree.SubElement(self.parent, tag) if self.parent is not None else etree.Element(
            tag, nsmap={"m": M, "t": T})
        self.success(root, MESSAGE)
        try:
            handle(self.own_mailbox(request), root)
        except (EWSError, store_errors.StoreError) as exc:
            root.clear()
            self.error(root, exc if isinstance(exc, EWSError) else store_error(exc), MESSAGE)
        return root

    def own_mailbox(self, request: etree._Element) -> Mailbox:
        """The mailbox the request names: the caller's own, or one the caller may open (acting as
        its owner by impersonation). Anyone else's is refused with the SOAP fault [MS-OXWOOF]
        3.1.4.1 prescribes ("User is not mailbox owner"); delegate rights do not reach OOF."""
        address = (require(require(request, t("Mailbox")), t("Address")).text or "").strip()
        mailbox = self.ctx.store.directory.mailbox_by_address(address)
        if mailbox is None:
            raise EWSError("ErrorMailRecipientNotFound", f"No mailbox with address {address}.")
        if not self.ctx.identity.may_open(mailbox):
            caller = self.ctx.identity.caller.address
            raise SOAPFault("ErrorAccessDenied",
                            f"User is not mailbox owner. User = {caller}, MailboxGuid = {mailbox.guid}")
        return mailbox
