"""The push URL guard: which URLs push notifications may go to, and that Subscribe refuses the rest
with ErrorInvalidPushSubscriptionUrl (with the server's default settings, which refuse loopback)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mailroom.notify.guard import Guard, GuardedResolver, PushUrlRefused

from .soap import codes
from .test_ews_pull import soap


def refused(guard: Guard, url: str) -> bool:
    try:
        guard.check_url(url)
    except PushUrlRefused:
        return True
    return False


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/", "http://127.0.0.1:8080/", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://localhost/", "http://LOCALHOST./",
    "http://224.0.0.1/", "ftp://10.0.0.1/", "file:///etc/passwd", "gopher://10.0.0.1/", "http:///nohost",
    "http://10.0.0.1:99999/",
])
def test_refused_by_default(url):
    assert refused(Guard(), url)


@pytest.mark.parametrize("url", ["http://10.1.2.3/push", "https://192.168.0.10:8443/ews", "http://[fd12::1]/",
                                 "https://203.0.113.7/listener", "http://listener.example.com/"])
def test_private_and_public_addresses_are_allowed_by_default(url):
    assert not refused(Guard(), url)


def test_allow_and_deny_lists():
    guard = Guard(allow=["127.0.0.1/32", "*.hooks.internal"], deny=["10.0.0.0/8", "crm.example.com"])
    assert not refused(guard, "http://127.0.0.1:9000/")  # allowed explicitly
    assert refused(guard, "http://127.0.0.2/")  # the rest of loopback is still refused
    assert refused(guard, "http://10.9.9.9/")
    assert refused(guard, "https://CRM.example.com/push")
    assert not refused(guard, "https://a.hooks.internal/")
    with pytest.raises(ValueError, match="neither a network"):
        Guard(deny=["10.0.0.0/33 oops"])


class HostileDNS:
    """A name whose every answer the test decides (as a hostile DNS server would): socket.getaddrinfo
    answers ``addresses`` for rebind.example and resolves everything else as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.addresses = ["203.0.113.7"]
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if host != "rebind.example":
                return real(host, port, *args, **kwargs)
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port or 0) if ":" not in a else (a, port or 0, 0, 0)) for a in self.addresses]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_every_resolved_address_is_checked(monkeypatch):
    dns = HostileDNS(monkeypatch)
    assert Guard().resolve("http://rebind.example/") == ["203.0.113.7"]
    dns.addresses = ["203.0.113.7", "169.254.169.254"]  # one bad address among good ones refuses the name
    with pytest.raises(PushUrlRefused, match="169.254.169.254"):
        Guard().resolve("http://rebind.example/")


def test_delivery_connects_only_to_checked_addresses(monkeypatch):
    """The resolver aiohttp connects through checks what it resolved, then hands exactly those
    addresses to the connection: a name that passed at Subscribe and points at loopback later
    (DNS rebinding) is refused at delivery."""
    dns = HostileDNS(monkeypatch)

    async def resolve() -> list[str]:
        resolver = GuardedResolver(Guard())
        try:
            return [r["host"] for r in await resolver.resolve("rebind.example", 80, socket.AF_UNSPEC)]
        finally:
            await resolver.close()

    assert asyncio.run(resolve()) == ["203.0.113.7"]
    dns.addresses = ["127.0.0.1"]
    with pytest.raises(PushUrlRefused, match="127.0.0.1"):
        asyncio.run(resolve())


def test_subscribe_refuses_a_guarded_url(server, mailbox):
    push = ('<m:Subscribe><m:PushSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
            "<t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:StatusFrequency>1</t:StatusFrequency>"
            "<t:URL>{}</t:URL></m:PushSubscriptionRequest></m:Subscribe>")
    for url in ("http://127.0.0.1:9/", "http://169.254.169.254/", "http://localhost:9/"):
        answer = soap(server, mailbox.address, push.format(url))
        assert codes(answer) == ["ErrorInvalidPushSubscriptionUrl"]
