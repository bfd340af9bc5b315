"""The categorizer: resolve each envelope recipient through the directory and pick its next hop.

An alias resolves to its mailbox's primary address; a local mailbox is delivered through its
mailbox database's delivery queue; a remote domain goes to that domain's queue (or to the smart
host's, when one is configured); an unknown address in an accepted domain fails with 5.1.1.
The directory has no transport groups yet (private distribution lists are contacts), so there
is nothing to expand. Runs in a worker thread: it reads the store (through the directory's
mail-flow cache, see store/cache.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.store import Store

from .queue import UNREACHABLE

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


def categorize(store: Store, addresses: list[str], *, smart_host: str, remote: bool) -> list[Route]:
    """One route per address, in order. ``remote`` says whether remote delivery is available
    (without it, remote recipients wait in the Unreachable queue)."""
    return [_route(store, address, smart_host, remote) for address in addresses]


def _route(store: Store, address: str, smart_host: str, remote: bool) -> Route:
    local_part, at, domain = address.strip().rpartition("@")
    if not at or not local_part or not domain:
        return Route(address, failure="550 5.1.3 Bad destination mailbox address syntax")
    mailbox = store.directory.lookup(address)
    if mailbox is not None:
        return Route(mailbox.address, mailbox.database_name, MAILBOX_DELIVERY)
    domain = domain.lower()
    if store.directory.accepts(domain):
        return Route(address, failure="550 5.1.1 User unknown")
    if not remote:
        return Route(address, UNREACHABLE, UNREACHABLE_DELIVERY)
    if smart_host:
        return Route(address, smart_host, SMART_HOST_DELIVERY)
    return Route(address, domain, DNS_DELIVERY)
