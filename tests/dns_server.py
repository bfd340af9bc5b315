"""A tiny authoritative DNS server on loopback (UDP and TCP on one ephemeral port) for tests.

    with DNSServer() as dns:
        dns.add("example.test", "MX", "10 mx1.example.test.")
        dns.add("mx1.example.test", "A", "127.0.0.2")
        dns.servfail("broken.test")
        settings = {"transport.dns_servers": [dns.address]}

A name with no records answers NXDOMAIN; a name with records but none of the asked type answers
NOERROR with no answer (NODATA); ``servfail`` names answer SERVFAIL and ``drop`` names are never
answered (a timeout). Answers too big for UDP come back truncated, so resolvers retry over TCP.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import Counter, defaultdict
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class DNSServer:
    def __init__(self, host: str = "127.0.0.1", ttl: int = 300) -> None:
        self.host = host
        self.ttl = ttl
        self.records: dict[dns.name.Name, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.failing: set[dns.name.Name] = set()
        self.dropped: set[dns.name.Name] = set()
        self.queries: Counter[tuple[str, str]] = Counter()  # (name without final dot, type) -> times asked
        self._servers: list[socketserver.BaseServer] = []

    def add(self, name: str, rdtype: str, *values: str) -> None:
        """Records in zone-file text, e.g. ``add("d.test", "MX", "10 mx.d.test.")``."""
        self.records[dns.name.from_text(name)][rdtype.upper()].extend(values)

    def servfail(self, name: str) -> None:
        self.failing.add(dns.name.from_text(name))

    def drop(self, name: str) -> None:
        self.dropped.add(dns.name.from_text(name))

    @property
    def port(self) -> int:
        return int(self._servers[0].server_address[1])

    @property
    def address(self) -> str:
        """``HOST:PORT`` as ``transport.dns_servers`` takes it."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def answer(self, wire: bytes, max_size: int = 65535) -> bytes | None:
        """The response to one query in wire format; None to stay silent."""
        query = dns.message.from_wire(wire)
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(question.name.to_text(omit_final_dot=True).lower(), rdtype)] += 1
        if question.name in self.dropped:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if question.name in self.failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif question.name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values := self.records[question.name].get(rdtype):
            response.answer.append(dns.rrset.from_text_list(question.name, self.ttl, dns.rdataclass.IN, rdtype,
                                                            values))
        try:
            return response.to_wire(max_size=max_size)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    def __enter__(self) -> DNSServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(20):  # the TCP port may be taken on this address while the UDP one was free
            udp = _server(socketserver.ThreadingUDPServer, family, (self.host, 0), _UDPHandler, self)
            try:
                tcp = _server(socketserver.ThreadingTCPServer, family, (self.host, udp.server_address[1]),
                              _TCPHandler, self)
            except OSError:
                udp.server_close()
                continue
            self._servers = [udp, tcp]
            break
        else:
            raise OSError("no free port for UDP and TCP together")
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _server(kind: type[socketserver.BaseServer], family: int, address: tuple[str, int],
            handler: type[socketserver.BaseRequestHandler], dns_server: DNSServer) -> Any:
    cls = type(kind.__name__, (kind,), {"address_family": family, "daemon_threads": True,
                                        "allow_reuse_address": True})
    server = cls(address, handler)
    server.dns = dns_server
    return server


class _UDPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        wire, sock = self.request
        query = dns.message.from_wire(wire)
        size = max(512, query.payload) if query.edns >= 0 else 512
        response = self.server.dns.answer(wire, size)  # type: ignore[attr-defined]
        if response is not None:
            sock.sendto(response, self.client_address)


class _TCPHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        stream = self.request.makefile("rb")
        while (prefix := stream.read(2)) and len(prefix) == 2:
            wire = stream.read(struct.unpack("!H", prefix)[0])
            response = self.server.dns.answer(wire)  # type: ignore[attr-defined]
            if response is None:
                return
            self.request.sendall(struct.pack("!H", len(response)) + response)
