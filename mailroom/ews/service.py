"""The base every EWS operation module builds on: response messages in schema order, per-item
error wrapping, and resolving the ids a request names to objects of the caller's mailbox."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from lxml import etree

from mailroom.store import errors as store_errors
from mailroom.store import ids
from mailroom.store.default_folders import ABSENT_DISTINGUISHED
from mailroom.store.model import Folder, Item, Mailbox

from .context import Context
from .errors import EWSError, SOAPFault
from .schema import schema
from .wsdl import error_fill
from .xml import M, T, local, m, sub, t

X = TypeVar("X")

OPERATIONS: dict[str, type[Operation]] = {}


class Operation:
    """One EWS operation. Subclasses set ``name`` and implement ``execute``; they are registered
    by name when their module is imported."""

    name: ClassVar[str] = ""
    min_version: ClassVar[str] = "Exchange2007"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            OPERATIONS[cls.name] = cls

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.parent: etree._Element | None = None  # the response envelope's Body, when there is one

    def execute(self, request: etree._Element) -> etree._Element:
        raise NotImplementedError

    # -- response building ---------------------------------------------------------------------
    def response(self) -> tuple[etree._Element, etree._Element]:
        """The ``m:<Name>Response`` root and its ``m:ResponseMessages`` container."""
        if self.parent is not None:
            root = etree.SubElement(self.parent, m(f"{self.name}Response"))
        else:
            root = etree.Element(m(f"{self.name}Response"), nsmap={"m": M, "t": T})
        return root, sub(root, m("ResponseMessages"))

    def success(self, messages: etree._Element, message_name: str | None = None) -> etree._Element:
        msg = sub(messages, m(message_name or f"{self.name}ResponseMessage"), ResponseClass="Success")
        sub(msg, m("ResponseCode"), "NoError")
        return msg

    def error(self, messages: etree._Element, err: EWSError, message_name: str | None = None) -> etree._Element:
        msg = sub(messages, m(message_name or f"{self.name}ResponseMessage"), ResponseClass="Error")
        sub(msg, m("MessageText"), err.message)
        sub(msg, m("ResponseCode"), err.code)
        sub(msg, m("DescriptiveLinkKey"), "0")
        if err.xml_values:
            xml = sub(msg, m("MessageXml"))
            for key, value in err.xml_values.items():
                sub(xml, t("Value"), value, Name=key)
        for name, value in error_fill(message_name or f"{self.name}ResponseMessage"):
            sub(msg, m(name), value)
        return msg

    def each(self, messages: etree._Element, things: Iterable[X],
             handle: Callable[[X, etree._Element], None], message_name: str | None = None) -> None:
        """One response message per thing, in order; a failing thing never fails the batch.
        ``handle`` fills a Success message; it raises EWSError to make it an Error message."""
        for thing in things:
            if self.ctx.ticket is not None:
                self.ctx.ticket.per_item()
            # Filled in place: moving a finished subtree into the response would make lxml walk
            # all of it again to reconcile namespaces.
            msg = self.success(messages, message_name)
            try:
                handle(thing, msg)
            except EWSError as err:
                messages.remove(msg)
                self.error(messages, err, message_name)
            except store_errors.StoreError as exc:
                messages.remove(msg)
                self.error(messages, store_error(exc), message_name)

    # -- ids ------------------------------------------------------------------------------------
    def folder_from(self, el: etree._Element) -> tuple[Mailbox, Folder]:
        """Resolve a FolderId or DistinguishedFolderId element to a folder the caller may open."""
        name = local(el.tag)
        if name == "DistinguishedFolderId":
            return self.distinguished_folder(el)
        if name == "FolderId":
            mailbox, row_id = self.decode_id(el.get("Id") or "", ids.KIND_FOLDER, "ErrorInvalidIdMalformed")
            try:
                return mailbox, self.ctx.store.folders.get(mailbox, row_id)
            except store_errors.NotFound as exc:
                raise EWSError("ErrorFolderNotFound") from exc
        raise SOAPFault("ErrorSchemaValidation", f"unexpected element {name} where a folder id belongs")

    def distinguished_folder(self, el: etree._Element) -> tuple[Mailbox, Folder]:
        name = el.get("Id") or ""
        mailbox = self.ctx.mailbox
        address_el = el.find(f"{t('Mailbox')}/{t('EmailAddress')}")
        if address_el is not None and (address_el.text or "").strip():
            mailbox = self.open_mailbox(address_el.text.strip())
        if name in ABSENT_DISTINGUISHED:
            raise EWSError("ErrorFolderNotFound", f"The mailbox has no {name} folder.")
        try:
            return mailbox, self.ctx.store.folders.distinguished(mailbox, name)
        except store_errors.NotFound as exc:
            raise EWSError("ErrorFolderNotFound", f"The mailbox has no {name} folder.") from exc

    def open_mailbox(self, address: str) -> Mailbox:
        mailbox = self.ctx.store.directory.mailbox_by_address(address)
        if mailbox is None:
            raise EWSError("ErrorNonExistentMailbox", f"No mailbox with address {address}.")
        if not self.ctx.identity.may_open(mailbox):
            raise EWSError("ErrorAccessDenied")
        return mailbox

    def decode_id(self, text: str, kind: int, malformed_code: str = "ErrorInvalidIdMalformed") -> tuple[Mailbox, int]:
        try:
            oid = ids.decode(text, kind)
        except ids.MalformedId as exc:
            raise EWSError(malformed_code) from exc
        mailbox = self.ctx.mailbox_by_guid(oid.mailbox_guid)
        if mailbox is None:
            raise EWSError("ErrorItemNotFound" if kind != ids.KIND_FOLDER else "ErrorFolderNotFound")
        if not self.ctx.identity.may_open(mailbox):
            raise EWSError("ErrorAccessDenied")
        return mailbox, oid.row_id

    def item_from(self, el: etree._Element, **load: bool) -> tuple[Mailbox, Item]:
        """Resolve an ItemId element; checks the ChangeKey only for shape (see ``expected_change``)."""
        mailbox, row_id = self.decode_id(el.get("Id") or "", ids.KIND_ITEM)
        try:
            return mailbox, self.ctx.store.items.get(mailbox, row_id, **load)
        except store_errors.NotFound as exc:
            raise EWSError("ErrorItemNotFound") from exc

    def folder_id_element(self, parent: etree._Element, mailbox: Mailbox, folder: Folder,
                          tag: str = "FolderId") -> etree._Element:
        return sub(parent, t(tag), Id=ids.folder_id(mailbox.guid, folder.id),
                   ChangeKey=ids.change_key(ids.CHANGEKEY_FOLDER, mailbox.database_guid, folder.change_number))


def expected_change(change_key: str | None) -> int | None:
    """The change number a request's ChangeKey carries (None when absent)."""
    if not change_key:
        return None
    try:
        return ids.change_number_of(change_key)
    except ids.MalformedId as exc:
        raise EWSError("ErrorInvalidChangeKey") from exc


def store_error(exc: store_errors.StoreError) -> EWSError:
    if isinstance(exc, store_errors.NotFound):
        return EWSError("ErrorItemNotFound", str(exc))
    if isinstance(exc, store_errors.Conflict):
        return EWSError("ErrorIrresolvableConflict")
    if isinstance(exc, store_errors.AlreadyExists):
        return EWSError("ErrorFolderExists", str(exc))
    return EWSError("ErrorInvalidOperation", str(exc))


def require(parent: etree._Element, tag: str) -> etree._Element:
    """A child the schema requires; its absence is a schema validation error, as Exchange says."""
    node = parent.find(tag)
    if node is None:
        raise SOAPFault("ErrorSchemaValidation", f"The request is missing the required element {local(tag)}.")
    return node


def choice(el: etree._Element, attribute: str, simple_type: str, default: str | None = None) -> str | None:
    """An attribute whose values a types.xsd enumeration lists; anything else fails schema validation."""
    value = el.get(attribute, default)
    if value is not None and value not in schema().enumeration(simple_type):
        raise SOAPFault("ErrorSchemaValidation", f"{attribute} {value!r} is not a valid {simple_type}.")
    return value


def boolean(text: str | None, what: str) -> bool:
    """An xs:boolean from the request, strictly: a typo is a schema error, not a silent false."""
    value = (text or "").strip()
    if value not in ("true", "false", "1", "0"):
        raise SOAPFault("ErrorSchemaValidation", f"{what}: {value!r} is not a valid boolean.")
    return value in ("true", "1")
