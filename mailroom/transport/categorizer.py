"""The categorizer: resolve each envelope recipient through the directory and pick its next hop.

A public distribution group is expanded first (``expand``, then ``record_expansion`` in the queue
database): its recipient becomes final (``expanded``) and each member a recipient of its own, nested
groups expanded recursively, loops cut, an address already a recipient of the message dropped as
a duplicate. Members keep the group's NOTIFY but SUCCESS (RFC 3461 6.2.7.3: the list is where
success is reported) and its ORCPT. Then each recipient is routed: an alias resolves to its
mailbox's primary address; a local mailbox is delivered through its mailbox database's delivery
queue; a remote domain goes to that domain's queue (or to the smart host's, when one is
configured); an unknown address in an accepted domain fails with 5.1.1. Private distribution
lists are contacts in a mailbox, never recipients here. Runs in a worker thread: it reads the store
(through the directory's mail-flow cache, see store/cache.py).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from mailroom.store import Store
from mailroom.store.model import Group, Mailbox

from .queue import EXPANDED, READY, UNREACHABLE, QueuedMessage, QueuedRecipient, now, select_recipients

# Exchange's DeliveryType names for the delivery queues.
MAILBOX_DELIVERY = "SmtpDeliveryToMailbox"
DNS_DELIVERY = "DnsConnectorDelivery"
SMART_HOST_DELIVERY = "SmartHostConnectorDelivery"
UNREACHABLE_DELIVERY = "Unreachable"


@dataclass(frozen=True)
class Route:
    address: str  # the address to deliver to (a mailbox's primary address after an alias)
    next_hop: str = ""  # the delivery queue: mailbox database, domain, smart host or the Unreachable queue
    delivery_type: str = ""
    failure: str = ""  # the SMTP reply when the recipient cannot be delivered at all

    @property
    def local(self) -> bool:
        return self.delivery_type == MAILBOX_DELIVERY


@dataclass(frozen=True)
class GroupExpansion:
    group: str  # the group's address, as the recipient named it
    members: tuple[str, ...]  # the recipients it adds
    duplicates: tuple[str, ...]  # members dropped: already recipients of the message, or met twice


def expand(store: Store, addresses: list[str]) -> list[GroupExpansion]:
    """The expansion of every recipient address that names a public group, in order. A member
    that is already a recipient (or another group's member) is a duplicate, not a second copy."""
    groups = [(address, _group(store, address)) for address in addresses]
    taken = {a.lower() for a, group in groups if group is None}
    expansions: list[GroupExpansion] = []
    for address, group in groups:
        if group is None or any(e.group.lower() == address.lower() for e in expansions):
            continue
        expansion = store.groups.expand(group)
        members = [m for m in expansion.addresses if m not in taken]
        duplicates = expansion.duplicates + [m for m in expansion.addresses if m in taken]
        taken.update(members)
        expansions.append(GroupExpansion(address, tuple(members), tuple(duplicates)))
    return expansions


def _group(store: Store, address: str) -> Group | None:
    """The public group ``address`` names. A group's address is in an accepted domain and is
    never a mailbox's (addresses are unique), so a remote recipient or a cached mailbox is not
    looked up."""
    domain = address.rpartition("@")[2].lower()
    if not domain or not store.directory.accepts(domain) or store.directory.lookup(address):
        return None
    return store.groups.by_address(address)


def record_expansion(conn: sqlite3.Connection, message: QueuedMessage, due: list[QueuedRecipient],
                     expansions: list[GroupExpansion]) -> list[QueuedRecipient]:
    """In the queue database: each group's recipient made final and its members added, ready now;
    returns the message's recipients due for this pass (``due`` without the groups, plus members)."""
    groups, added = set(), set()
    for expansion in expansions:
        named = [r for r in due if r.address.lower() == expansion.group.lower()]  # a group named twice: once
        groups.update(r.id for r in named)
        conn.executemany("UPDATE recipients SET status = ?, last_response = ? WHERE id = ?",
                         [(EXPANDED, "250 2.1.5 Distribution list expanded", r.id) for r in named])
        group = named[0]
        notify = ",".join(n for n in group.notify if n != "SUCCESS") or ("NEVER" if group.notify else "")
        for member in expansion.members:
            added.add(conn.execute(
                "INSERT INTO recipients (message_id, address, original, status, due, notify, orcpt)"
                " VALUES (?,?,?,?,?,?,?)", (message.id, member, group.original, READY, now(), notify, group.orcpt)
            ).lastrowid)
    wanted = {r.id for r in due if r.id not in groups} | added
    return [r for r in select_recipients(conn, message.id) if r.id in wanted]


def categorize(store: Store, addresses: list[str], *, smart_host: str, remote: bool) -> list[Route]:
    """One route per address, in order. ``remote`` says whether remote delivery is available
    (without it, remote recipients wait in the Unreachable queue)."""
    return [_route(store, address, smart_host, remote) for address in addresses]


def cached_routes(store: Store, addresses: list[str]) -> list[Route] | None:
    """The routes when the directory's cache knows every address as a local mailbox (then none
    is a group to expand: addresses are unique), found without the store, so on the event loop;
    None when it does not."""
    routes = []
    for address in addresses:
        mailbox = store.directory.cached_lookup(address)
        if mailbox is None:
            return None
        routes.append(_local(mailbox))
    return routes


def _local(mailbox: Mailbox) -> Route:
    return Route(mailbox.address, mailbox.database_name, MAILBOX_DELIVERY)


def _route(store: Store, address: str, smart_host: str, remote: bool) -> Route:
    local_part, at, domain = address.strip().rpartition("@")
    if not at or not local_part or not domain:
        return Route(address, failure="550 5.1.3 Bad destination mailbox address syntax")
    domain = domain.lower()
    if store.directory.accepts(domain):  # mailboxes and aliases are all in accepted domains
        mailbox = store.directory.lookup(address)
        return _local(mailbox) if mailbox is not None else Route(address, failure="550 5.1.1 User unknown")
    if not remote:
        return Route(address, UNREACHABLE, UNREACHABLE_DELIVERY)
    if smart_host:
        return Route(address, smart_host, SMART_HOST_DELIVERY)
    return Route(address, domain, DNS_DELIVERY)
