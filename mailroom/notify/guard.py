"""The guard on push notification URLs. A push subscription makes this server POST to a URL a client
chose, so without a guard push would let any mailbox user probe the server's own network: its
loopback services, the cloud metadata endpoint, link-local devices.

A URL must be http or https. Its host name, and every address it resolves to, is checked:

1. a host or network in ``push_allow`` is allowed (the administrator's explicit word wins);
2. a host or network in ``push_deny`` is refused;
3. the built-in refusals below are refused: link-local (169.254.0.0/16, fe80::/10), the cloud
   metadata addresses and names, loopback (127.0.0.0/8, ::1: the server's own services), the
   unspecified, multicast and reserved ranges;
4. anything else is allowed: public addresses and private networks (10/8, 172.16/12,
   192.168/16, fc00::/7), where Exchange's push listeners usually live, on the LAN.

Delivery connects to the addresses that were checked (``GuardedResolver``), never resolving the
name a second time, so a name that answers differently later (DNS rebinding) cannot slip past.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import ThreadedResolver
from aiohttp.abc import ResolveResult

from .settings import Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

REFUSED_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10",  # link-local; 169.254.169.254 is the metadata address of most clouds
    "fd00:ec2::254/128",  # AWS metadata over IPv6 (inside the private fc00::/7 allowed below)
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "127.0.0.0/8", "::1/128",  # loopback: the server's own services
    "0.0.0.0/8", "::/128",  # "this host": reaches loopback on most systems
    "224.0.0.0/4", "ff00::/8", "240.0.0.0/4",  # multicast, reserved and broadcast
))
REFUSED_HOSTS = frozenset({"localhost", "metadata", "metadata.google.internal", "metadata.goog",
                           "instance-data", "instance-data.ec2.internal"})
_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


class PushUrlRefused(ValueError):
    """The URL is not one push notifications may go to; the message says why."""


@dataclass(frozen=True)
class _Rules:
    networks: tuple[Network, ...]
    hosts: frozenset[str]  # exact names, or "*.example.com" for every name under example.com

    @classmethod
    def parse(cls, entries: Iterable[str], what: str) -> _Rules:
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                if not _HOST_NAME.match(text):
                    raise ValueError(f"{what}: {entry!r} is neither a network (CIDR) nor a host name") from None
                hosts.add(text)
        return cls(tuple(networks), frozenset(hosts))

    def match(self, host: str, address: Address | None) -> bool:
        if host in self.hosts or any(h.startswith("*.") and host.endswith(h[1:]) for h in self.hosts):
            return True
        return address is not None and any(address in network for network in self.networks)


_BUILT_IN = _Rules(REFUSED_NETWORKS, REFUSED_HOSTS)


class Guard:
    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.allow = _Rules.parse(allow, "notifications.push_allow")
        self.deny = _Rules.parse(deny, "notifications.push_deny")

    def check(self, host: str, address: Address | None) -> None:
        """Refuse ``host`` (at ``address``, once resolved) unless the rules above allow it."""
        host = host.lower().rstrip(".")
        if address is not None and isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if self.allow.match(host, address):
            return
        where = f"{host} ({address})" if address is not None and str(address) != host else host
        if self.deny.match(host, address):
            raise PushUrlRefused(f"Push notifications may not go to {where}: refused by notifications.push_deny.")
        if _BUILT_IN.match(host, address):
            raise PushUrlRefused(f"Push notifications may not go to {where}: a loopback, link-local, metadata "
                                 "or reserved address (allow it with notifications.push_allow).")

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's host and port, if its scheme is http or https and its host name (or literal
        address) passes; the addresses a name resolves to are checked when it is resolved."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise PushUrlRefused(f"{url!r} is not a valid URL.") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PushUrlRefused(f"{url!r} is not an http or https URL.")
        host = parts.hostname
        self.check(host, _literal(host))
        return host, port or (443 if parts.scheme == "https" else 80)

    def resolve(self, url: str) -> list[str]:
        """Every address the URL's host resolves to, each checked (blocking: for worker threads)."""
        host, port = self.check_url(url)
        try:
            found = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        except OSError as exc:
            raise PushUrlRefused(f"The host {host!r} does not resolve: {exc}.") from exc
        for address in found:
            self.check(host, ipaddress.ip_address(address.split("%")[0]))
        return sorted(found)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class GuardedResolver(ThreadedResolver):
    """aiohttp's resolver, refusing a name if any address it resolves to is refused; the
    connection then goes to the addresses returned, the ones checked."""

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        for result in found:
            self.guard.check(host, ipaddress.ip_address(result["host"].split("%")[0]))
        return found


def from_settings(settings: Settings) -> Guard:
    return Guard(settings.push_allow, settings.push_deny)
