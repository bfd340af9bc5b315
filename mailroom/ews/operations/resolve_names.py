"""ResolveNames: ambiguous name resolution over the directory and the caller's contact folders
([MS-OXWSRSLNM]). An exact address (or alias) wins; otherwise a fragment matches the words of a
display name and the start of an address. The directory keeps no given name, surname, phones,
office or public groups yet, so directory entries resolve on display name and addresses only."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content.recipients import holds_address
from mailroom.store.model import Folder, Item, Mailbox
from mailroom.store.query import And, Contains, Filter, Or, Page, Prop, Sort

from ..errors import EWSError, SOAPFault
from ..items import item_id_attrs, render
from ..paging import Paging, set_paging_attributes
from ..paths import Shape
from ..service import Operation, boolean, choice, require
from ..xml import m, parse_fragment, sub, t

LIMIT = 100  # ArrayOfResolutionType allows at most 100 resolutions
_SOURCES = {"ActiveDirectory": ("directory",), "ActiveDirectoryContacts": ("directory", "contacts"),
            "Contacts": ("contacts",), "ContactsActiveDirectory": ("contacts", "directory")}
_CONTACT_CLASSES = Or((Contains(Prop("ItemClass"), "IPM.Contact", "Prefixed"),
                       Contains(Prop("ItemClass"), "IPM.DistList", "Prefixed")))
_BY_NAME = [Sort(Prop("DisplayName"))]
_EMAILS = Prop("EmailAddresses")
Place = tuple[Mailbox, Folder]  # a contact folder to search and its mailbox


@dataclass(frozen=True, slots=True)
class Found:
    """One resolution: a directory mailbox, or a contact / private list (``item``) in ``owner``'s store."""

    owner: Mailbox
    item: Item | None = None
    address: str | None = None  # the contact address that matched


class ResolveNames(Operation):
    name = "ResolveNames"

    def execute(self, request: etree._Element) -> etree._Element:
        full = boolean(request.get("ReturnFullContactData"), "ReturnFullContactData")
        scope = choice(request, "SearchScope", "ResolveNamesSearchScopeType", "ActiveDirectoryContacts")
        shape = Shape(base=choice(request, "ContactDataShape", "DefaultShapeNamesType", "Default"))
        if request.get("ContactDataShape") is not None and not self.ctx.at_least("Exchange2010_SP2"):
            raise SOAPFault("ErrorSchemaValidation", "ContactDataShape needs Exchange2010_SP2 or later.")
        require(request, m("UnresolvedEntry"))
        parents = request.find(m("ParentFolderIds"))
        root, messages = self.response()

        def one(entry: etree._Element, msg: etree._Element) -> None:
            folders = [self.folder_from(el, Access.READ) for el in parents] if parents is not None else [
                (self.ctx.mailbox, self.ctx.store.folders.distinguished(self.ctx.mailbox, "contacts"))]
            found, total = self._resolve((entry.text or "").strip(), _SOURCES[scope], folders)
            if not found:
                raise EWSError("ErrorNameResolutionNoResults", "No results were found.")
            if len(found) > 1:
                _warn(msg, "ErrorNameResolutionMultipleResults", "Multiple results were found.")
            container = sub(msg, m("ResolutionSet"))
            set_paging_attributes(container, Paging(), len(found), total)
            for hit in found:
                self._write(sub(container, t("Resolution")), hit, full, shape)

        self.each(messages, request.findall(m("UnresolvedEntry")), one)
        return root

    # -- matching ---------------------------------------------------------------------------
    def _resolve(self, text: str, sources: tuple[str, ...], folders: list[Place]) -> tuple[list[Found], int]:
        """Exact address matches if there are any (only those for an ``SMTP:`` entry), else prefix
        matches; sources in scope order, at most LIMIT, and how many matched in all."""
        address_only = text[:5].lower() == "smtp:"
        if address_only:
            text = text[5:].strip()
        exact: tuple[list[Found], int] = ([], 0)
        if "@" in text:
            exact = self._search(text, sources, folders, exact=True)
        if exact[0] or address_only or not text:
            return exact
        return self._search(text, sources, folders, exact=False)

    def _search(self, text: str, sources: tuple[str, ...], folders: list[Place],
                exact: bool) -> tuple[list[Found], int]:
        found: list[Found] = []
        total = 0
        for source in sources:
            if source == "directory":
                hits, count = self._directory(text, exact)
                found += [Found(mb) for mb in hits]
                total += count
                continue
            for owner, folder in folders:
                where = _exact_contact(text) if exact else _prefix_contact(text)
                items, count = self.ctx.store.items.find(owner, folder.id, where=where, sort=_BY_NAME,
                                                         page=Page(0, max(0, LIMIT - len(found))))
                found += [Found(owner, item, _contact_address(item, text)) for item in items]
                total += count
        return found[:LIMIT], total

    def _directory(self, text: str, exact: bool) -> tuple[list[Mailbox], int]:
        if exact:
            mailbox = self.ctx.store.directory.mailbox_by_address(text)
            return ([mailbox], 1) if mailbox else ([], 0)
        return self.ctx.store.directory.search(text, LIMIT)

    # -- writing ----------------------------------------------------------------------------
    def _write(self, resolution: etree._Element, hit: Found, full: bool, shape: Shape) -> None:
        mailbox = sub(resolution, t("Mailbox"))
        if hit.item is None:
            sub(mailbox, t("Name"), hit.owner.display_name)
            sub(mailbox, t("EmailAddress"), hit.owner.address)
            sub(mailbox, t("RoutingType"), "SMTP")
            sub(mailbox, t("MailboxType"), "Mailbox")
            if full:
                _directory_contact(resolution, hit.owner)
            return
        props = hit.item.props
        private_list = hit.item.item_class.startswith("IPM.DistList")
        sub(mailbox, t("Name"), props.get("DisplayName") or props.get("FileAs") or hit.address or "")
        if hit.address and not private_list:
            sub(mailbox, t("EmailAddress"), hit.address)
        sub(mailbox, t("RoutingType"), "MAPIPDL" if private_list else "SMTP")
        sub(mailbox, t("MailboxType"), "PrivateDL" if private_list else "Contact")
        etree.SubElement(mailbox, t("ItemId"), item_id_attrs(hit.owner, hit.item))
        if full and not private_list:
            render(resolution, hit.owner, hit.item, shape, self.ctx, find=True)


def _warn(msg: etree._Element, code: str, text: str) -> None:
    """Turn a Success message into a Warning that still carries its results."""
    msg.set("ResponseClass", "Warning")
    msg.find(m("ResponseCode")).text = code
    msg.insert(0, etree.Element(m("MessageText")))
    msg[0].text = text
    sub(msg, m("DescriptiveLinkKey"), "0")


def _exact_contact(address: str) -> Filter:
    """Contacts holding this address (the stored EmailAddresses element has it as an entry's text)."""
    return And((holds_address(address), _CONTACT_CLASSES))


def _prefix_contact(text: str) -> Filter:
    return And((Or((Contains(Prop("DisplayName"), text, "PrefixOnWords"), Contains(Prop("GivenName"), text, "Prefixed"),
                    Contains(Prop("Surname"), text, "Prefixed"), Contains(_EMAILS, f">{text}"),
                    Contains(_EMAILS, f">smtp:{text}"))), _CONTACT_CLASSES))


def _addresses(item: Item) -> list[str]:
    """A contact's e-mail addresses in key order (EmailAddress1 first), without routing prefixes."""
    stored = item.props.get("EmailAddresses")
    if not stored:
        return []
    entries = sorted(parse_fragment(stored), key=lambda e: e.get("Key") or "")
    values = [(e.text or "").strip() for e in entries]
    return [v[5:] if v[:5].lower() == "smtp:" else v for v in values if v]


def _contact_address(item: Item, text: str) -> str | None:
    """The address that matched ``text``, else the contact's first one."""
    addresses = _addresses(item)
    prefix = text.lower()
    return next((a for a in addresses if a.lower().startswith(prefix)), addresses[0] if addresses else None)


def _directory_contact(resolution: etree._Element, mailbox: Mailbox) -> None:
    """What the directory knows of a mailbox, as Exchange writes a directory entry's contact data:
    the primary address as ``SMTP:`` and aliases as ``smtp:`` (three entries at most)."""
    contact = sub(resolution, t("Contact"))
    sub(contact, t("DisplayName"), mailbox.display_name)
    emails = sub(contact, t("EmailAddresses"))
    proxies = [f"SMTP:{mailbox.address}"] + [f"smtp:{a}" for a in mailbox.aliases]
    for number, proxy in enumerate(proxies[:3], start=1):
        sub(emails, t("Entry"), proxy, Key=f"EmailAddress{number}")
    sub(contact, t("ContactSource"), "ActiveDirectory")
