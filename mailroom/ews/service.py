"""The base every EWS operation module builds on: response messages in schema order, per-item
error wrapping, and resolving the ids a request names to objects of the caller's mailbox."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, ClassVar, TypeVar

from lxml import etree

from mailroom.access.identity import DELEGATE
from mailroom.access.permissions import Access, Right, allows
from mailroom.store import errors as store_errors
from mailroom.store import ids
from mailroom.store.default_folders import ABSENT_DISTINGUISHED
from mailroom.store.model import Folder, Item, Mailbox

from . import calendar
from .context import Context
from .errors import EWSError, SOAPFault
from .schema import schema
from .wsdl import error_fill
from .xml import M, T, Writer, local, m, sub, t

X = TypeVar("X")

OPERATIONS: dict[str, type[Operation]] = {}


class Operation:
    """One EWS operation. Subclasses set ``name`` and implement ``execute``; they are registered
    by name when their module is imported."""

    name: ClassVar[str] = ""
    min_version: ClassVar[str] = "Exchange2007"
    writes: ClassVar[bool] = False  # answers with ``written()`` rather than a tree in ``parent``

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
        root = self._root()
        return root, sub(root, m("ResponseMessages"))

    def nested_response(self) -> tuple[etree._Element, etree._Element]:
        """``response`` for the operations whose response is itself a (Success) response message
        holding the others (GetMailTips, GetServiceConfiguration)."""
        root = self._root()
        root.set("ResponseClass", "Success")
        sub(root, m("ResponseCode"), "NoError")
        return root, sub(root, m("ResponseMessages"))

    def _root(self) -> etree._Element:
        if self.parent is not None:
            return etree.SubElement(self.parent, m(f"{self.name}Response"))
        return etree.Element(m(f"{self.name}Response"), nsmap={"m": M, "t": T})

    def written(self) -> Written:
        """The ``m:<Name>Response`` with its ``m:ResponseMessages`` open, written as it is built
        (``xml.Writer``): for the operations that answer with items, where building a tree would
        cost most of the request. Such an operation sets ``writes``."""
        out = Written()
        out.start(f"m:{self.name}Response")
        out.start("m:ResponseMessages")
        return out

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

    def each_written(self, out: Written, things: Iterable[X], handle: Callable[[X, Written], None],
                     message_name: str | None = None) -> None:
        """``each`` for a written response: ``handle`` writes a Success message's content; what it
        wrote is dropped when it raises, and the Error message written instead."""
        tag = f"m:{message_name or f'{self.name}ResponseMessage'}"
        for thing in things:
            if self.ctx.ticket is not None:
                self.ctx.ticket.per_item()
            mark = out.mark()
            out.start(tag, _SUCCESS)
            out.leaf("m:ResponseCode", "NoError")
            try:
                handle(thing, out)
            except (EWSError, store_errors.StoreError) as exc:
                out.rollback(mark)
                err = exc if isinstance(exc, EWSError) else store_error(exc)
                out.built(partial(self.error, err=err, message_name=message_name))
                out.codes.append(err.code)
            else:
                out.end()
                out.codes.append("NoError")

    # -- ids and access ---------------------------------------------------------------------------
    # Every folder and item a request names is resolved here and checked here, against what the
    # operation is about to do with it (``Access``): the one place where access is decided.
    def folder_from(self, el: etree._Element, need: Access = Access.SEE_FOLDER) -> tuple[Mailbox, Folder]:
        """Resolve a FolderId or DistinguishedFolderId element to a folder the caller may ``need``."""
        name = local(el.tag)
        if name == "DistinguishedFolderId":
            mailbox, folder = self.distinguished_folder(el)
        elif name == "FolderId":
            mailbox, row_id = self.decode_id(el.get("Id") or "", ids.KIND_FOLDER, "ErrorInvalidIdMalformed")
            try:
                folder = self.ctx.store.folders.get(mailbox, row_id)
            except store_errors.NotFound as exc:
                raise self.missing(mailbox, "ErrorFolderNotFound") from exc
        else:
            raise SOAPFault("ErrorSchemaValidation", f"unexpected element {name} where a folder id belongs")
        self.authorize(mailbox, folder.id, need)
        return mailbox, folder

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
        """The mailbox at ``address``; what the caller may do in it is decided per folder."""
        mailbox = self.ctx.store.directory.mailbox_by_address(address)
        if mailbox is None:
            raise EWSError("ErrorNonExistentMailbox", f"No mailbox with address {address}.")
        return mailbox

    def decode_id(self, text: str, kind: int, malformed_code: str = "ErrorInvalidIdMalformed") -> tuple[Mailbox, int]:
        mailbox, oid = self.decode_object(text, (kind,), malformed_code)
        return mailbox, oid.row_id

    def decode_object(self, text: str, kinds: tuple[int, ...],
                      malformed_code: str = "ErrorInvalidIdMalformed") -> tuple[Mailbox, ids.ObjectId]:
        """An id of one of these kinds and the mailbox it names (not checked: callers go on to
        ``authorize``)."""
        try:
            oid = ids.decode(text)
        except ids.MalformedId as exc:
            raise EWSError(malformed_code) from exc
        if oid.kind not in kinds:
            raise EWSError(malformed_code)
        mailbox = self.ctx.mailbox_by_guid(oid.mailbox_guid)
        if mailbox is None:
            raise EWSError("ErrorItemNotFound" if ids.KIND_FOLDER not in kinds else "ErrorFolderNotFound")
        return mailbox, oid

    def item_from(self, el: etree._Element, need: Access = Access.READ, **load: bool) -> tuple[Mailbox, Item]:
        """Resolve an ItemId (of an item or of an occurrence), an OccurrenceItemId (a recurring
        master and an instance index) or a RecurringMasterItemId (an occurrence's master) to an item
        the caller may ``need``. Checks the ChangeKey only for shape (see ``expected_change``)."""
        name = local(el.tag)
        if name == "OccurrenceItemId":
            mailbox, oid = self.decode_object(el.get("RecurringMasterId") or "", (ids.KIND_ITEM,))
            try:
                index = int(el.get("InstanceIndex") or "")
            except ValueError as exc:
                raise SOAPFault("ErrorSchemaValidation", "InstanceIndex must be a number.") from exc
            return mailbox, calendar.occurrence(self._item(mailbox, oid.row_id, need, load), index)
        if name == "RecurringMasterItemId":
            mailbox, oid = self.decode_object(el.get("OccurrenceId") or "", (ids.KIND_ITEM, ids.KIND_OCCURRENCE))
            item = self._item(mailbox, oid.row_id, need, load)
            if oid.kind == ids.KIND_ITEM and not item.props.get("Recurrence"):
                raise EWSError("ErrorCalendarCannotUseIdForOccurrenceId", "The item is not an occurrence.")
            return mailbox, item
        mailbox, oid = self.decode_object(el.get("Id") or "", (ids.KIND_ITEM, ids.KIND_OCCURRENCE))
        item = self._item(mailbox, oid.row_id, need, load)
        if oid.kind == ids.KIND_OCCURRENCE:
            return mailbox, calendar.occurrence(item, oid.attachment_id)
        return mailbox, item

    def _item(self, mailbox: Mailbox, row_id: int, need: Access, load: dict[str, bool]) -> Item:
        try:
            item = self.ctx.store.items.get(mailbox, row_id, **load)
        except store_errors.NotFound as exc:
            raise self.missing(mailbox, "ErrorItemNotFound") from exc
        self.authorize(mailbox, item.folder_id, need, item)
        return item

    def item_row(self, text: str, need: Access, kind: int = ids.KIND_ITEM) -> tuple[Mailbox, int]:
        """The mailbox and item row an ItemId (or AttachmentId) names, checked for ``need``; the
        item is read for the check only when folder permissions decide."""
        mailbox, row_id = self.decode_id(text, kind)
        if self.ctx.identity.right_over(mailbox) != DELEGATE:
            self.authorize(mailbox, None, need, None, row_id)
            return mailbox, row_id
        try:
            item = self.ctx.store.items.get(mailbox, row_id, body=False, attachments=False, with_extended=False)
        except store_errors.NotFound as exc:
            raise self.missing(mailbox, "ErrorItemNotFound") from exc
        self.authorize(mailbox, item.folder_id, need, item)
        return mailbox, row_id

    def missing(self, mailbox: Mailbox, code: str) -> EWSError:
        """The error for an id of ``mailbox`` that names nothing: ``code`` in the mailbox the request
        acts on; in any other the caller holds no right on what is not there, so it is refused like
        anything else it may not reach (which also says nothing about which ids exist)."""
        if self.ctx.identity.right_over(mailbox) != DELEGATE:
            return EWSError(code)
        if self.ctx.trail is not None:
            self.ctx.trail.note(mailbox, DELEGATE, None, None, granted=False)
        return EWSError("ErrorAccessDenied", f"The caller may not reach this object of {mailbox.address}.")

    def authorize(self, mailbox: Mailbox, folder_id: int | None, need: Access, item: Item | None = None,
                  item_row: int | None = None) -> None:
        """Refuse (ErrorAccessDenied) unless the caller may ``need`` in the folder, and note the
        access for the audit log. The mailbox the request acts on is open to it in full; any other
        by the folder permissions its owner gave the caller, except its private items for
        delegates not allowed to see them (to whom they are as absent as from views)."""
        identity = self.ctx.identity
        right = identity.right_over(mailbox)
        own_item = item is not None and item.created_by == identity.mailbox.id
        granted = right != DELEGATE or (folder_id is not None and allows(self.rights_on(folder_id), need, own_item)
                                        and not (item is not None and is_private(item)
                                                 and self.ctx.hides_private(mailbox)))
        if self.ctx.trail is not None:
            self.ctx.trail.note(mailbox, right, folder_id, item.id if item is not None else item_row, granted)
        if not granted:
            raise EWSError("ErrorAccessDenied", f"The caller may not {need.value} in this folder of {mailbox.address}.")

    def rights_on(self, folder_id: int) -> Right:
        """The caller's rights on a folder of another mailbox (read once per request)."""
        found = self.ctx.rights.get(folder_id)
        if found is None:
            found = self.ctx.rights[folder_id] = self.ctx.store.permissions.rights(folder_id, self.ctx.mailbox)
        return found

    def folder_viewer(self, mailbox: Mailbox) -> int | None:
        """Whose folder permissions decide which of ``mailbox``'s folders a listing shows: none
        in the mailbox the request acts on (everything shows), else the caller's."""
        return None if self.ctx.identity.right_over(mailbox) != DELEGATE else self.ctx.mailbox.id

    def visible_folders(self, mailbox: Mailbox, folders: list[Folder]) -> list[Folder]:
        """The folders of a listing the caller may see (all of them in the mailbox it acts on)."""
        if self.ctx.identity.right_over(mailbox) != DELEGATE:
            return folders
        return [f for f in folders if allows(self.rights_on(f.id), Access.SEE_FOLDER)]

    def folder_id_element(self, parent: etree._Element, mailbox: Mailbox, folder: Folder,
                          tag: str = "FolderId") -> etree._Element:
        return sub(parent, t(tag), Id=ids.folder_id(mailbox.guid, folder.id),
                   ChangeKey=ids.change_key(ids.CHANGEKEY_FOLDER, mailbox.database_guid, folder.change_number))


class Written(Writer):
    """A response written as it is built, with the ResponseCode of each of its messages (for the
    audit trail, which records the first error)."""

    __slots__ = ("codes",)

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[str] = []


_SUCCESS = {"ResponseClass": "Success"}


def is_private(item: Item) -> bool:
    return item.props.get("Sensitivity") == "Private"


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
    """A child the schema requires; its absence is a schema validation error, as Exchange says.
    (``iterchildren``: ``find`` would go through lxml's ElementPath machinery for one tag.)"""
    node = next(parent.iterchildren(tag), None)
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
