"""Remote delivery (routing + outbound SMTP) against real SMTP servers (aiosmtpd) and a real DNS
server (tests/dns_server.py), all on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from mailroom.server.config import Config, ConfigError, load
from mailroom.server.tls import ensure_self_signed, server_context
from mailroom.transport.envelope import Recipient
from mailroom.transport.outbound import Outbound, RecipientOutcome
from mailroom.transport.routing import Router

from .dns_server import DNSServer

T = TypeVar("T")
RAW = (b"From: sender@here.test\r\nTo: someone@example.test\r\nSubject: outbound\r\n"
       b"Message-ID: <outbound-1@here.test>\r\n\r\nHello from mailroom.\r\n.leading dot stays\r\n")


def run(coro: Awaitable[T]) -> T:
    """Run a test coroutine, bounded in time."""
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 60)
    return asyncio.run(bounded())


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    helo: str
    mail_options: list[str]
    rcpt_options: list[str]


@dataclass
class Sink:
    """An aiosmtpd handler that keeps what it accepts; ``replies`` answers chosen addresses (at MAIL or
    RCPT) and ``data_reply`` the end of DATA; ``gate``, when set, holds every DATA until it opens."""

    replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    received: list[Received] = field(default_factory=list)
    dsn_params: list[str] = field(default_factory=list)
    gate: asyncio.Event | None = None
    waiting: int = 0

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if address in self.replies:
            return self.replies[address]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.gate is not None:
            self.waiting += 1
            await self.gate.wait()
            self.waiting -= 1
        if self.data_reply:
            return self.data_reply
        self.received.append(Received(envelope.mail_from or "", list(envelope.rcpt_tos),
                                      envelope.original_content or b"", session.ssl is not None,
                                      session.host_name or "", list(envelope.mail_options),
                                      list(envelope.rcpt_options)))
        return "250 2.0.0 Queued as 42"


class DSNSink(Sink):
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-DSN", responses[-1]]


class DSNSMTP(SMTP):
    """aiosmtpd (which refuses RFC 3461's parameters) taking them aside into ``Sink.dsn_params``."""

    async def smtp_MAIL(self, arg: str | None) -> None:
        await super().smtp_MAIL(self._set_aside(arg, ("RET=", "ENVID=")))

    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(self._set_aside(arg, ("NOTIFY=", "ORCPT=")))

    def _set_aside(self, arg: str | None, names: tuple[str, ...]) -> str | None:
        if arg is None:
            return None
        words = arg.split(" ")
        self.event_handler.dsn_params.extend(word for word in words if word.upper().startswith(names))
        return " ".join(word for word in words if not word.upper().startswith(names))


@asynccontextmanager
async def sink_server(handler: Sink, host: str = "127.0.0.1", port: int = 0, tls: Path | None = None,
                      size: int = 10_000_000, smtputf8: bool = True, cls: type[SMTP] = SMTP) -> AsyncIterator[int]:
    """A real SMTP server on this event loop; yields its port. ``tls``: a folder for a self-signed
    certificate, offered with STARTTLS."""
    context = server_context(*ensure_self_signed(tls, ["localhost", "127.0.0.1"])) if tls else None
    server = await asyncio.get_running_loop().create_server(
        lambda: cls(handler, hostname="sink.test", tls_context=context, data_size_limit=size,
                    enable_SMTPUTF8=smtputf8), host, port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@asynccontextmanager
async def raw_server(host: str, port: int, lines: list[bytes]) -> AsyncIterator[int]:
    """A broken server: writes ``lines`` one per line it reads (the first at once), then hangs up."""
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for line in lines:
            writer.write(line)
            await writer.drain()
            await reader.readline()
        writer.close()

    server = await asyncio.start_server(talk, host, port)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as server:
        yield server


async def send(dns: DNSServer, sink: Sink, domain: str, recipients: list[Recipient], raw: bytes = RAW,
               host: str = "127.0.0.2", server: dict[str, Any] | None = None, sender: str = "sender@here.test",
               envid: str | None = None, ret: str | None = None, **settings: Any) -> list[RecipientOutcome]:
    """Deliver through a new Outbound (``settings``: transport.* options) to ``sink`` served on ``host``
    (``server``: sink_server's options); the sink's port is the remote_port."""
    async with sink_server(sink, host, **(server or {})) as port:
        return await outbound(dns, remote_port=port, **settings).deliver(domain, sender, recipients, raw, envid, ret)


def outbound(dns: DNSServer | None, **settings: Any) -> Outbound:
    config = Config()
    config.set("transport.dns_servers", [dns.address] if dns else [], "test")
    for key, value in settings.items():
        config.set(f"transport.{key}", value, "test")
    return Outbound(config, "mailroom.test")


def rcpts(*addresses: str) -> list[Recipient]:
    return [Recipient(address) for address in addresses]


def one_mx(dns: DNSServer, domain: str, address: str = "127.0.0.2") -> None:
    dns.add(domain, "MX", f"10 mx1.{domain}.")
    dns.add(f"mx1.{domain}", "AAAA" if ":" in address else "A", address)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_delivers_to_the_mx_over_starttls(dns, tmp_path):
    one_mx(dns, "example.test")
    sink = Sink()

    outcomes = run(send(dns, sink, "example.test", rcpts("a@example.test", "b@example.test"),
                        server=dict(tls=tmp_path)))
    assert [(o.address, o.code, o.enhanced, o.delivered, o.permanent) for o in outcomes] == [
        ("a@example.test", 250, "2.0.0", True, False), ("b@example.test", 250, "2.0.0", True, False)]
    assert outcomes[0].text == "2.0.0 Queued as 42"
    assert outcomes[0].remote_host.startswith("mx1.example.test [127.0.0.2]:")
    (received,) = sink.received
    assert received.tls  # STARTTLS offered with a self-signed certificate: used, unverified
    assert received.helo == "mailroom.test"
    assert (received.mail_from, received.rcpt_tos) == ("sender@here.test", ["a@example.test", "b@example.test"])
    assert received.content == RAW  # dot-stuffing undone by the server: the bytes arrive unchanged
    assert f"SIZE={len(RAW)}" in received.mail_options


def test_each_recipient_gets_its_own_reply_and_data_applies_to_the_accepted(dns):
    one_mx(dns, "example.test")
    sink = Sink(replies={"busy@example.test": "450 4.2.1 Mailbox busy", "gone@example.test": "550 5.1.1 No such user",
                         "odd@example.test": "550 Not here"})

    outcomes = run(send(dns, sink, "example.test",
                        rcpts("busy@example.test", "ok@example.test", "gone@example.test", "odd@example.test")))
    assert [(o.address, o.code, o.enhanced, o.permanent) for o in outcomes] == [
        ("busy@example.test", 450, "4.2.1", False), ("ok@example.test", 250, "2.0.0", False),
        ("gone@example.test", 550, "5.1.1", True), ("odd@example.test", 550, "5.0.0", True)]
    assert outcomes[2].text == "5.1.1 No such user"
    assert sink.received[0].rcpt_tos == ["ok@example.test"]


@pytest.mark.parametrize("reply", ["451 4.3.0 Try later", "554 5.6.0 Content refused"])
def test_the_data_reply_applies_to_every_accepted_recipient(dns, reply):
    one_mx(dns, "example.test")
    sink = Sink(replies={"gone@example.test": "550 5.1.1 No such user"}, data_reply=reply)

    outcomes = run(send(dns, sink, "example.test", rcpts("a@example.test", "gone@example.test", "b@example.test")))
    code, enhanced = int(reply[:3]), reply.split()[1]
    assert [(o.code, o.enhanced) for o in outcomes] == [(code, enhanced), (550, "5.1.1"), (code, enhanced)]
    assert outcomes[0].permanent == reply.startswith("5")
    assert not sink.received


def test_a_refused_sender_fails_every_recipient(dns):
    one_mx(dns, "example.test")
    sink = Sink(replies={"spammer@here.test": "550 5.7.1 Sender refused"})

    outcomes = run(send(dns, sink, "example.test", rcpts("a@example.test", "b@example.test"),
                        sender="spammer@here.test"))
    assert [(o.code, o.enhanced, o.permanent) for o in outcomes] == [(550, "5.7.1", True)] * 2


def test_the_lowest_preference_mx_is_used_first(dns):
    dns.add("example.test", "MX", "20 far.example.test.", "10 near.example.test.")
    dns.add("far.example.test", "A", "127.0.0.2")
    dns.add("near.example.test", "A", "127.0.0.3")
    far, near = Sink(), Sink()

    async def main() -> list[RecipientOutcome]:
        async with sink_server(far, "127.0.0.2") as port, sink_server(near, "127.0.0.3", port):
            return await outbound(dns, remote_port=port).deliver(
                "example.test", "sender@here.test", rcpts("a@example.test"), RAW)

    (outcome,) = run(main())
    assert outcome.delivered and outcome.remote_host.startswith("near.example.test [127.0.0.3]")
    assert len(near.received) == 1 and not far.received


def test_equal_preferences_are_tried_in_random_order(dns):
    dns.add("example.test", "MX", "10 mx1.example.test.", "10 mx2.example.test.", "5 first.example.test.")
    for name, address in (("mx1", "127.0.0.2"), ("mx2", "127.0.0.3"), ("first", "127.0.0.4")):
        dns.add(f"{name}.example.test", "A", address)
    router = Router("", [dns.address], 25, 5)

    async def main() -> set[tuple[str, ...]]:
        return {tuple(target.host for target in await router.route("example.test")) for _ in range(64)}

    assert run(main()) == {("first.example.test", "mx1.example.test", "mx2.example.test"),
                           ("first.example.test", "mx2.example.test", "mx1.example.test")}
    assert dns.queries[("example.test", "MX")] == 1  # the rest came from the cache, within the TTL


def test_a_refusing_mx_falls_back_to_the_next(dns):
    dns.add("example.test", "MX", "10 down.example.test.", "20 up.example.test.")
    dns.add("down.example.test", "A", "127.0.0.2")  # nothing listens there
    dns.add("up.example.test", "A", "127.0.0.3")
    sink = Sink()

    (outcome,) = run(send(dns, sink, "example.test", rcpts("a@example.test"), host="127.0.0.3"))
    assert outcome.delivered and outcome.remote_host.startswith("up.example.test")
    assert len(sink.received) == 1


def test_a_bad_greeting_or_a_dropped_connection_moves_on_to_the_next_mx(dns):
    dns.add("example.test", "MX", "10 grumpy.example.test.", "20 rude.example.test.", "30 good.example.test.")
    dns.add("grumpy.example.test", "A", "127.0.0.2")
    dns.add("rude.example.test", "A", "127.0.0.3")
    dns.add("good.example.test", "A", "127.0.0.4")
    sink = Sink()

    async def main() -> list[RecipientOutcome]:
        async with sink_server(sink, "127.0.0.4") as port, \
                raw_server("127.0.0.2", port, [b"554 5.3.2 No service here\r\n"]), \
                raw_server("127.0.0.3", port, [b"220 rude.example.test ESMTP\r\n"]):  # hangs up at EHLO
            return await outbound(dns, remote_port=port).deliver(
                "example.test", "sender@here.test", rcpts("a@example.test"), RAW)

    (outcome,) = run(main())
    assert outcome.delivered and outcome.remote_host.startswith("good.example.test")


def test_every_host_refusing_connections_is_a_transient_outcome(dns):
    dns.add("example.test", "MX", "10 mx1.example.test.", "20 mx2.example.test.")
    dns.add("mx1.example.test", "A", "127.0.0.2")
    dns.add("mx2.example.test", "A", "127.0.0.3")

    async def main() -> list[RecipientOutcome]:
        async with sink_server(Sink(), "127.0.0.4") as port:  # a port nothing listens on at .2 and .3
            return await outbound(dns, remote_port=port).deliver(
                "example.test", "sender@here.test", rcpts("a@example.test", "b@example.test"), RAW)

    refused = run(main())
    assert [(o.code, o.enhanced, o.permanent, o.delivered) for o in refused] == [(0, "4.4.1", False, False)] * 2
    assert "mx1.example.test [127.0.0.2]" in refused[0].text and "mx2.example.test [127.0.0.3]" in refused[0].text


@pytest.mark.parametrize(("lines", "code", "enhanced", "says"), [
    ([b"554 5.3.2 No service here\r\n"], 0, "4.4.1", "554 5.3.2 No service here"),
    ([b"220 hi\r\n", b"250 hi\r\n", b"421 4.3.2 Shutting down\r\n"], 421, "4.3.2", "4.3.2 Shutting down"),
    ([b"220 hi\r\n"], 0, "4.4.2", "lost"),  # hangs up at EHLO
])
def test_a_host_ending_the_session_is_a_transient_outcome(dns, lines, code, enhanced, says):
    dns.add("only.test", "A", "127.0.0.2")

    async def main() -> list[RecipientOutcome]:
        async with raw_server("127.0.0.2", 0, lines) as port:
            return await outbound(dns, remote_port=port).deliver(
                "only.test", "sender@here.test", rcpts("a@only.test"), RAW)

    (outcome,) = run(main())
    assert (outcome.code, outcome.enhanced, outcome.permanent) == (code, enhanced, False)
    assert says in outcome.text


@pytest.mark.parametrize(("domain", "enhanced"), [("nullmx.test", "5.1.10"), ("nosuch.test", "5.1.2"),
                                                  ("broken.test", "4.4.3"), ("noaddress.test", "5.4.4"),
                                                  ("silent.test", "4.4.3")])
def test_dns_answers_become_outcomes(dns, domain, enhanced):
    dns.add("nullmx.test", "MX", "0 .")
    dns.servfail("broken.test")
    dns.add("noaddress.test", "MX", "10 ghost.noaddress.test.")
    dns.drop("silent.test")
    outcomes = run(outbound(dns, dns_timeout=1).deliver(domain, "sender@here.test", rcpts(f"a@{domain}"), RAW))
    assert [(o.code, o.enhanced, o.permanent, o.remote_host) for o in outcomes] == [
        (0, enhanced, enhanced.startswith("5"), "")]
    assert domain in outcomes[0].text


def test_a_domain_without_mx_gets_mail_at_its_address(dns):
    dns.add("plain.test", "A", "127.0.0.2")
    sink = Sink()

    (outcome,) = run(send(dns, sink, "plain.test", rcpts("a@plain.test")))
    assert outcome.delivered and outcome.remote_host.startswith("plain.test [127.0.0.2]")
    assert dns.queries[("plain.test", "MX")] == 1


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_only_mx_is_reached_over_ipv6(dns):
    one_mx(dns, "six.test", "::1")
    sink = Sink()

    (outcome,) = run(send(dns, sink, "six.test", rcpts("a@six.test"), host="::1"))
    assert outcome.delivered and outcome.remote_host.startswith("mx1.six.test [::1]:")


@pytest.mark.parametrize("by_name", [False, True])
def test_the_smart_host_takes_everything(dns, by_name):
    dns.add("relay.here.test", "A", "127.0.0.3")
    sink = Sink()

    async def main() -> list[RecipientOutcome]:
        async with sink_server(sink, "127.0.0.3") as port:
            smart_host = f"{'relay.here.test' if by_name else '127.0.0.3'}:{port}"
            return await outbound(dns, smart_host=smart_host).deliver(
                "nosuch.test", "sender@here.test", rcpts("a@nosuch.test"), RAW)  # no MX lookup at all

    (outcome,) = run(main())
    assert outcome.delivered
    assert dns.queries[("nosuch.test", "MX")] == 0
    assert len(sink.received) == 1


def test_tls_required_refuses_a_server_without_starttls(dns, tmp_path):
    one_mx(dns, "example.test")
    sink = Sink()

    (outcome,) = run(send(dns, sink, "example.test", rcpts("a@example.test"), outbound_tls="required"))
    assert (outcome.code, outcome.enhanced, outcome.permanent) == (0, "4.7.4", False)
    assert "STARTTLS" in outcome.text
    assert not sink.received


@pytest.mark.parametrize(("policy", "encrypted"), [("required", True), ("off", False)])
def test_tls_policy_with_a_server_offering_starttls(dns, tmp_path, policy, encrypted):
    one_mx(dns, "example.test")
    sink = Sink()

    (outcome,) = run(send(dns, sink, "example.test", rcpts("a@example.test"),
                          server=dict(tls=tmp_path), outbound_tls=policy))
    assert outcome.delivered
    assert sink.received[0].tls == encrypted


def test_an_unknown_tls_policy_is_a_config_error(dns):
    with pytest.raises(ConfigError, match="outbound_tls"):
        outbound(dns, outbound_tls="sometimes")


def test_a_message_over_the_servers_size_is_refused_without_sending(dns):
    one_mx(dns, "example.test")
    sink = Sink()

    (outcome,) = run(send(dns, sink, "example.test", rcpts("a@example.test"), server=dict(size=len(RAW) - 1)))
    assert (outcome.code, outcome.enhanced, outcome.permanent) == (0, "5.3.4", True)
    assert outcome.remote_host.startswith("mx1.example.test")
    assert not sink.received


@pytest.mark.parametrize("smtputf8", [True, False])
def test_an_internationalised_address_needs_smtputf8(dns, smtputf8):
    one_mx(dns, "example.test")
    sink = Sink()
    raw = "From: sender@here.test\r\nTo: jörg@example.test\r\nSubject: Grüße\r\n\r\nHallo, schöne Grüße.\r\n"

    (outcome,) = run(send(dns, sink, "example.test", rcpts("jörg@example.test"),
                          raw.encode(), server=dict(smtputf8=smtputf8)))
    if smtputf8:
        assert outcome.delivered
        (received,) = sink.received
        assert received.rcpt_tos == ["jörg@example.test"]
        assert {"SMTPUTF8", "BODY=8BITMIME"} <= set(received.mail_options)
        assert received.content == raw.encode()
    else:
        assert (outcome.code, outcome.enhanced, outcome.permanent) == (0, "5.6.7", True)
        assert not sink.received


def test_an_8bit_body_is_sent_as_8bitmime(dns):
    one_mx(dns, "example.test")
    sink = Sink()
    raw = "From: sender@here.test\r\nContent-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße.\r\n".encode()

    (outcome,) = run(send(dns, sink, "example.test", rcpts("a@example.test"), raw))
    assert outcome.delivered
    assert "BODY=8BITMIME" in sink.received[0].mail_options
    assert "SMTPUTF8" not in sink.received[0].mail_options  # ASCII headers and addresses need no SMTPUTF8


@pytest.mark.parametrize("offers_dsn", [True, False])
def test_dsn_parameters_pass_through_when_the_server_offers_dsn(dns, offers_dsn):
    one_mx(dns, "example.test")
    sink = DSNSink() if offers_dsn else Sink()
    recipients = [Recipient("a@example.test", notify=("SUCCESS", "FAILURE"), orcpt="rfc822;a@example.test"),
                  Recipient("b@example.test", notify=("NEVER",))]

    outcomes = run(send(dns, sink, "example.test", recipients, server=dict(cls=DSNSMTP), envid="id+1=x", ret="hdrs"))
    assert all(outcome.delivered for outcome in outcomes)
    assert [outcome.dsn_passed for outcome in outcomes] == [offers_dsn, offers_dsn]  # no "relayed" DSN then
    expected = ["RET=HDRS", "ENVID=id+2B1+3Dx", "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;a@example.test",
                "NOTIFY=NEVER"]
    assert sink.dsn_params == (expected if offers_dsn else [])


def test_an_address_that_cannot_go_on_the_wire_fails_alone(dns):
    one_mx(dns, "example.test")
    sink = Sink()

    bad, ok = run(send(dns, sink, "example.test", rcpts("bad\r\nRSET@example.test", "ok@example.test")))
    assert (bad.code, bad.enhanced, bad.permanent) == (0, "5.1.3", True)
    assert ok.delivered
    assert sink.received[0].rcpt_tos == ["ok@example.test"]


@pytest.mark.parametrize(("settings", "domains", "limit"), [
    ({"max_per_domain_connections": 2}, ["example.test"] * 6, 2),
    ({"max_outbound_connections": 3}, ["d1.test", "d2.test", "d3.test", "d4.test"] * 2, 3),
])
def test_connections_are_limited(dns, settings, domains, limit):
    for domain in set(domains):
        dns.add(domain, "A", "127.0.0.2")
    sink = Sink(gate=asyncio.Event())

    async def main() -> tuple[int, list[RecipientOutcome]]:
        async with sink_server(sink, "127.0.0.2") as port:
            sender = outbound(dns, remote_port=port, **settings)
            deliveries = asyncio.gather(*(sender.deliver(domain, "sender@here.test", rcpts(f"a@{domain}"), RAW)
                                          for domain in domains))
            while sink.waiting < limit:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # room for a connection beyond the limit to show up
            most = sink.waiting
            sink.gate.set()
            return most, [outcome for outcomes in await deliveries for outcome in outcomes]

    most, outcomes = run(main())
    assert most == limit
    assert all(outcome.delivered for outcome in outcomes) and len(sink.received) == len(domains)


def test_the_routing_settings_come_from_the_config_file(dns, tmp_path):
    dns.add("example.test", "A", "127.0.0.2")
    config_file = tmp_path / "mailroom.toml"
    config_file.write_text(f'[transport]\ndns_servers = ["{dns.address}"]\nremote_port = 2999\n')
    router = Router.from_config(load(config_file))
    (target,) = run(router.route("example.test"))
    assert (target.host, target.address, target.port) == ("example.test", "127.0.0.2", 2999)


@pytest.mark.parametrize(("text", "error"), [("dns_servers = [53]", "list of strings"),
                                             ('dns_servers = "127.0.0.1:53"', "must be a list"),
                                             ('dns_servers = ["dns.example.net:53"]', "not an IP address")])
def test_bad_dns_servers_are_config_errors(tmp_path, text, error):
    config_file = tmp_path / "mailroom.toml"
    config_file.write_text(f"[transport]\n{text}\n")
    with pytest.raises(ConfigError, match=error):
        Router.from_config(load(config_file))
