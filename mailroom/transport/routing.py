"""The next hop for a remote domain: the smart host, or the domain's MX hosts (RFC 5321 §5.1).

``Router.route`` turns a domain into the addresses to try, in order, or raises ``RoutingFailure``
with the RFC 3463 status the recipients get: 5.1.2 for a domain that does not exist, 5.1.10 for a
null MX (RFC 7505), 5.4.4 when no host has an address, 4.4.3 when DNS did not answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver

from mailroom.server.config import Config, ConfigError

log = logging.getLogger(__name__)

MAX_ADDRESSES = 10  # addresses tried per delivery, over all MX hosts (Postfix tries 5)


@dataclass(frozen=True)
class Target:
    """One address to connect to; ``host`` is the name it came from (for TLS SNI and logs)."""

    host: str
    address: str
    port: int

    def __str__(self) -> str:
        address = f"[{self.address}]"
        return f"{address}:{self.port}" if self.host == self.address else f"{self.host} {address}:{self.port}"


class RoutingFailure(Exception):
    """The domain cannot be routed now (``enhanced`` 4.x.x) or ever (5.x.x)."""

    def __init__(self, enhanced: str, text: str) -> None:
        super().__init__(f"{enhanced} {text}")
        self.enhanced = enhanced
        self.text = text


class Router:
    def __init__(self, smart_host: str, dns_servers: list[str], port: int, dns_timeout: float) -> None:
        self.smart_host = _host_port(smart_host, port) if smart_host else None
        self.port = port
        self.resolver = _resolver(dns_servers, dns_timeout)

    @classmethod
    def from_config(cls, config: Config) -> Router:
        return cls(config["transport.smart_host"], config["transport.dns_servers"], config["transport.remote_port"],
                   config["transport.dns_timeout"])

    async def route(self, domain: str) -> list[Target]:
        """The addresses to try for ``domain``, best first (at most ``MAX_ADDRESSES``)."""
        if self.smart_host:
            host, port = self.smart_host
            return await self._targets([host], port, missing="4.4.3")
        literal = _address_literal(domain)
        if literal:
            return [Target(literal, literal, self.port)]
        return await self._targets(await self._mx_hosts(domain), self.port, missing="5.4.4")

    async def _mx_hosts(self, domain: str) -> list[str]:
        """MX host names by preference, equal preferences shuffled (RFC 5321 §5.1); the domain itself
        when it has no MX records (the implicit MX)."""
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NXDOMAIN:
            raise RoutingFailure("5.1.2", f"the domain {domain} does not exist (DNS: NXDOMAIN)") from None
        except dns.resolver.NoAnswer:
            return [domain]
        except dns.exception.DNSException as exc:
            raise RoutingFailure("4.4.3", f"DNS lookup of the MX records of {domain} failed: {exc}") from None
        records = [(record.preference, record.exchange) for record in answer]
        if all(exchange == dns.name.root for _, exchange in records):
            raise RoutingFailure("5.1.10", f"the domain {domain} accepts no mail (null MX, RFC 7505)")
        random.shuffle(records)
        records.sort(key=lambda record: record[0])  # stable: equal preferences keep their random order
        return list(dict.fromkeys(exchange.to_text(omit_final_dot=True) for _, exchange in records
                                  if exchange != dns.name.root))

    async def _targets(self, hosts: list[str], port: int, missing: str) -> list[Target]:
        """Every address of ``hosts`` in host order; ``missing`` is the status when none has one."""
        hosts = hosts[:MAX_ADDRESSES]
        results = await asyncio.gather(*(self._addresses(host) for host in hosts), return_exceptions=True)
        targets = [Target(host, address, port) for host, result in zip(hosts, results, strict=True)
                   if isinstance(result, list) for address in result]
        if targets:
            return targets[:MAX_ADDRESSES]
        _raise_first_error(results)
        raise RoutingFailure(missing, f"no address (A or AAAA) found for {', '.join(hosts)}")

    async def _addresses(self, host: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``host``; raises 4.4.3 only when a lookup failed and none was found."""
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        results = await asyncio.gather(self._lookup(host, "A"), self._lookup(host, "AAAA"), return_exceptions=True)
        addresses = [address for result in results if isinstance(result, list) for address in result]
        if not addresses:
            _raise_first_error(results)
        return addresses

    async def _lookup(self, host: str, rdtype: str) -> list[str]:
        try:
            answer = await self.resolver.resolve(host, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise RoutingFailure("4.4.3", f"DNS lookup of the {rdtype} records of {host} failed: {exc}") from None
        return [record.address for record in answer]


def _resolver(servers: list[str], timeout: float) -> dns.asyncresolver.Resolver:
    """dnspython's resolver on ``servers`` ("HOST:PORT" IP addresses) or the system's, with a TTL cache."""
    try:
        resolver = dns.asyncresolver.Resolver(configure=not servers)
    except dns.resolver.NoResolverConfiguration as exc:  # no /etc/resolv.conf: start anyway, defer remote mail
        log.warning("no system DNS resolver (%s): remote mail waits until transport.dns_servers is set", exc)
        resolver = dns.asyncresolver.Resolver(configure=False)
    if servers:
        resolver.nameservers = [_nameserver(server) for server in servers]
    resolver.lifetime = timeout
    resolver.cache = dns.resolver.Cache()
    return resolver


def _raise_first_error(results: list[object]) -> None:
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _host_port(value: str, default_port: int) -> tuple[str, int]:
    """"host:port", "host", "[v6]:port" or a bare IPv6 address to a pair."""
    host, sep, port = value.rpartition(":")
    if sep and port.isdigit() and (":" not in host or host.startswith("[")):
        return host.strip("[]"), int(port)
    return value.strip("[]"), default_port


def _nameserver(server: str) -> dns.nameserver.Nameserver:
    host, port = _host_port(server, 53)
    try:
        return dns.nameserver.Do53Nameserver(str(ipaddress.ip_address(host)), port)
    except ValueError:
        raise ConfigError(f"transport.dns_servers: {server!r} is not an IP address and port") from None


def _address_literal(domain: str) -> str | None:
    """The address of an RFC 5321 address literal domain ("[192.0.2.1]", "[IPv6:2001:db8::1]")."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    text = domain[1:-1]
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise RoutingFailure("5.1.2", f"{domain} is not a valid address literal") from None
