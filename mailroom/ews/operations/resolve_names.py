"""ResolveNames: ambiguous name resolution over the directory and the caller's contact folders
([MS-OXWSRSLNM]). An exact address (or alias) wins; otherwise a fragment matches the words of a
display name and the start of an address. Directory entries are mailboxes (rooms and equipment
included: MailboxType Mailbox) and public groups (PublicDL); with ReturnFullContactData a mailbox
brings its directory attributes (department, job title, phones, office, address, manager)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content.recipients import holds_address
from mailroom.store.directory import PHONE_KEYS
from mailroom.store.model import DirectoryEntry, Folder, Group, Item, Mailbox
from mailroom.store.query import And, Contains, Filter, Or, Page, Prop, Sort

from ..errors import EWSError, SOAPFault
from ..items import item_id_attrs, render_element
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
    """One resolution: a directory mailbox or ``group``, or a contact / private list (``item``) in
    ``owner``'s store."""

    owner: Mailbox | None
    item: Item | None = None
    address: str | None = None  # the contact address that matched
    group: Group | None = None


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
                found += hits
                total += count
                continue
            for owner, folder in folders:
                where = _exact_contact(text) if exact else _prefix_contact(text)
                items, count = self.ctx.store.items.find(owner, folder.id, where=where, sort=_BY_NAME,
                                                         page=Page(0, max(0, LIMIT - len(found))))
                found += [Found(owner, item, _contact_address(item, text)) for item in items]
                total += count
        return found[:LIMIT], total

    def _directory(self, text: str, exact: bool) -> tuple[list[Found], int]:
        """Mailboxes and groups, together by display name."""
        store = self.ctx.store
        if exact:
            mailbox = store.directory.mailbox_by_address(text)
            group = None if mailbox else store.groups.by_address(text)
            return ([Found(mailbox)], 1) if mailbox else ([Found(None, group=group)], 1) if group else ([], 0)
        mailboxes, count = store.directory.search(text, LIMIT)
        groups, group_count = store.groups.search(text, LIMIT)
        entries: list[Mailbox | Group] = sorted([*mailboxes, *groups], key=lambda e: e.display_name.lower())
        found = [Found(None, group=e) if isinstance(e, Group) else Found(e) for e in entries[:LIMIT]]
        return found, count + group_count

    # -- writing ----------------------------------------------------------------------------
    def _write(self, resolution: etree._Element, hit: Found, full: bool, shape: Shape) -> None:
        mailbox = sub(resolution, t("Mailbox"))
        if hit.group is not None:
            directory_mailbox(mailbox, hit.group)
            if full:
                self._directory_contact(resolution, hit.group.display_name, hit.group.address, ())
            return
        assert hit.owner is not None
        if hit.item is None:
            directory_mailbox(mailbox, hit.owner)
            if full:
                self._directory_contact(resolution, hit.owner.display_name, hit.owner.address, hit.owner.aliases,
                                        self.ctx.store.directory.entry(hit.owner))
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
            render_element(resolution, hit.owner, hit.item, shape, self.ctx, find=True)

    def _directory_contact(self, resolution: etree._Element, name: str, address: str, aliases: tuple[str, ...],
                           entry: DirectoryEntry | None = None) -> None:
        """What the directory knows of an entry, as Exchange writes it (ContactItemType order): the
        primary address as ``SMTP:`` and aliases as ``smtp:`` (three at most), the attributes set,
        and from Exchange2010_SP2 the directory-only Alias, Notes, ManagerMailbox and DirectReports."""
        entry = entry or DirectoryEntry()
        values = entry.attributes
        contact = sub(resolution, t("Contact"))
        sub(contact, t("DisplayName"), name)
        for field in ("GivenName", "Initials", "CompanyName"):
            _optional(contact, field, values.get(field))
        emails = sub(contact, t("EmailAddresses"))
        proxies = [f"SMTP:{address}"] + [f"smtp:{a}" for a in aliases]
        for number, proxy in enumerate(proxies[:3], start=1):
            sub(emails, t("Entry"), proxy, Key=f"EmailAddress{number}")
        postal = [(f, values[f]) for f in ("Street", "City", "State", "CountryOrRegion", "PostalCode") if f in values]
        if postal:
            business = sub(sub(contact, t("PhysicalAddresses")), t("Entry"), Key="Business")
            for field, value in postal:
                sub(business, t(field), value)
        if entry.phones:
            phones = sub(contact, t("PhoneNumbers"))
            for key in PHONE_KEYS:
                if key in entry.phones:
                    sub(phones, t("Entry"), entry.phones[key], Key=key)
        _optional(contact, "AssistantName", values.get("AssistantName"))
        sub(contact, t("ContactSource"), "ActiveDirectory")
        for field in ("Department", "JobTitle"):
            _optional(contact, field, values.get(field))
        _optional(contact, "Manager", entry.manager.display_name if entry.manager else None)
        _optional(contact, "OfficeLocation", values.get("OfficeLocation"))
        _optional(contact, "Surname", values.get("Surname"))
        if not self.ctx.at_least("Exchange2010_SP2"):
            return
        sub(contact, t("Alias"), address.split("@", 1)[0])
        _optional(contact, "Notes", values.get("Notes"))
        if entry.manager is not None:
            directory_mailbox(sub(contact, t("ManagerMailbox")), entry.manager, t("Mailbox"))
        if entry.direct_reports:
            reports = sub(contact, t("DirectReports"))
            for report in entry.direct_reports:
                directory_mailbox(reports, report, t("Mailbox"))


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


def _optional(parent: etree._Element, name: str, value: str | None) -> None:
    if value:
        sub(parent, t(name), value)


def directory_mailbox(parent: etree._Element, entry: Mailbox | Group, tag: str | None = None) -> etree._Element:
    """A directory entry as an EmailAddressType (in ``parent``, or in a new ``tag`` child of it):
    Name, EmailAddress, RoutingType SMTP and MailboxType (PublicDL for a group; rooms and
    equipment are mailboxes)."""
    element = sub(parent, tag) if tag else parent
    sub(element, t("Name"), entry.display_name)
    sub(element, t("EmailAddress"), entry.address)
    sub(element, t("RoutingType"), "SMTP")
    sub(element, t("MailboxType"), "PublicDL" if isinstance(entry, Group) else "Mailbox")
    return element
