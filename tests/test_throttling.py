"""EWS throttling against the real server on both back ends: policy resolution and inheritance,
the concurrency limit, the token bucket's cutoff (ErrorServerBusy with BackOffMilliseconds) and
recovery, the find-count limit per RequestServerVersion and paging, subscriptions, streaming
connections, impersonation budgets, a flooding caller beside a well-behaved one, and the CLI.

Policies are read again on every request here (cache lifetimes of 0) so a change applies at once."""

from __future__ import annotations

import base64
import select
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import update

from mailroom.ews import streaming
from mailroom.store import Store
from mailroom.store import tables as t
from mailroom.store.model import Mailbox
from mailroom.throttling.budget import Budget, Throttled
from mailroom.throttling.cpu import CPUMeter, sleep_for
from mailroom.throttling.policy import FALLBACK, GLOBAL, PARAMETERS, Policy, PolicyError, resolve

from .conftest import PASSWORD, RunningServer, make_account, new_domain, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post
from .test_cli import fails, mailroom, ok, table_rows
from .test_ews_pull import fill

GET_INBOX = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
             '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>')


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(store_url, tmp_path / "data", **{"throttling.policy_cache_seconds": 0,
                                                             "throttling.policy_cache_max_seconds": 0,
                                                             "throttling.hanging_connection_limit": 1})
    yield running
    running.stop()
    assert not running.bad_responses, "responses that fail the EWS schema:\n" + "\n".join(running.bad_responses)


@pytest.fixture
def users(server_store: Store) -> tuple[Mailbox, Mailbox]:
    domain = new_domain(server_store)
    return new_mailbox(server_store, domain, "alice"), new_mailbox(server_store, domain, "bob")


def call(server: RunningServer, user: str, body: str = GET_INBOX, version: str = "Exchange2016",
         header: str = "") -> tuple[int, str]:
    """(HTTP status, the fault's or first message's ResponseCode)."""
    response = post(server.ews_url, envelope(body, version, header), user, PASSWORD)
    root = parse(response)
    return response.status_code, fault_code(root) or codes(root)[0]


def backoff_ms(server: RunningServer, user: str) -> int:
    response = post(server.ews_url, envelope(GET_INBOX), user, PASSWORD)
    root = parse(response)
    assert response.status_code == 500 and fault_code(root) == "ErrorServerBusy"
    value = root.find("s:Body/s:Fault/detail/t:MessageXml/t:Value", NS)
    assert value.get("Name") == "BackOffMilliseconds"
    return int(value.text)


def unique(name: str) -> str:
    """A policy name no other test uses (the PostgreSQL database is shared by the whole run)."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def find_items(view: str = "") -> str:
    return (f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>{view}'
            '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>')


# -- policies ------------------------------------------------------------------------------------
def test_resolution_inherits_from_the_organization_default_then_global(store):
    domain = new_domain(store)
    alice, bob = new_mailbox(store, domain, "alice"), new_mailbox(store, domain, "bob")
    org, apps, org2 = unique("Org"), unique("Apps"), unique("Org2")
    assert resolve(store.throttling.chain(alice.id)) == FALLBACK
    assert FALLBACK.policy == GLOBAL and FALLBACK["EwsMaxConcurrency"] == 27 and FALLBACK["EwsCutoffBalance"] is None
    try:
        store.throttling.add(org, {"EwsFindCountLimit": 500, "EwsMaxConcurrency": 20}, default=True)
        store.throttling.add(apps, {"ewsmaxconcurrency": 2, "EwsMaxBurst": None})
        store.throttling.assign(alice.address, apps)
        mine = resolve(store.throttling.chain(alice.id))
        assert mine.policy == apps
        assert (mine["EwsMaxConcurrency"], mine.sources["EwsMaxConcurrency"]) == (2, apps)
        assert (mine["EwsMaxBurst"], mine.sources["EwsMaxBurst"]) == (None, apps)  # set to unlimited
        assert (mine["EwsFindCountLimit"], mine.sources["EwsFindCountLimit"]) == (500, org)
        assert (mine["EwsRechargeRate"], mine.sources["EwsRechargeRate"]) == (900_000, GLOBAL)
        theirs = resolve(store.throttling.chain(bob.id))
        assert (theirs.policy, theirs["EwsMaxConcurrency"]) == (org, 20)
        # One organization default: making another the default takes it from the first.
        store.throttling.add(org2, {}, default=True)
        assert sorted((p.name, p.is_default) for p, _ in store.throttling.policies() if p.name in (org, apps, org2)) \
            == sorted([(apps, False), (org, False), (org2, True)])
        # Unset values inherit again.
        store.throttling.update(apps, {}, unset=("EwsMaxConcurrency",))
        assert resolve(store.throttling.chain(alice.id))["EwsMaxConcurrency"] == 27
    finally:  # the organization default is the whole store's: give it back
        for policy, _ in store.throttling.policies():
            if policy.name in (org, org2) and policy.is_default:
                store.throttling.update(policy.name, {}, default=False)


def test_a_corrupt_policy_falls_back_and_bad_values_change_nothing(store):
    domain = new_domain(store)
    alice = new_mailbox(store, domain, "alice")
    org, broken = unique("Org"), unique("Broken")
    store.throttling.add(org, {"EwsMaxConcurrency": 20}, default=True)
    try:
        store.throttling.add(broken, {"EwsMaxConcurrency": 3})
        store.throttling.assign(alice.address, broken)
        with store.engine.begin() as conn:
            conn.execute(update(t.throttling_policies).where(t.throttling_policies.c.name == broken)
                         .values(params={"EwsMaxConcurrency": "three", "NoSuchThing": 1}))
        effective = resolve(store.throttling.chain(alice.id))
        assert (effective.policy, effective["EwsMaxConcurrency"]) == (org, 20)
        before = store.throttling.policies()
        for values in ({"EwsMaxConcurrency": -1}, {"CPUStartPercent": 101}, {"NoSuchThing": 1}, {"EwsMaxBurst": "9"}):
            with pytest.raises(PolicyError):
                store.throttling.update(org, values)
        with pytest.raises(PolicyError):
            store.throttling.add(GLOBAL, {})
        assert store.throttling.policies() == before
    finally:
        store.throttling.update(org, {}, default=False)


def test_every_parameter_has_its_exchange_default():
    assert {p.name: p.default for p in PARAMETERS} == {
        "EwsMaxConcurrency": 27, "EwsPercentTimeInCAS": 90, "EwsFindCountLimit": 1000, "EwsMaxSubscriptions": 5000,
        "CPUStartPercent": 75, "EwsMaxBurst": 300_000, "EwsRechargeRate": 900_000, "EwsCutoffBalance": None}
    assert [p.option for p in PARAMETERS][:2] == ["--ews-max-concurrency", "--ews-percent-time-in-cas"]
    assert PARAMETERS[4].option == "--cpu-start-percent"


# -- budgets underneath ----------------------------------------------------------------------------
def test_percent_time_in_cas_refuses_until_the_minute_has_room():
    policy = resolve([Policy("P", {"EwsPercentTimeInCAS": 1})])  # 600 ms per minute
    budget = Budget(1, "a@example.org", policy)
    ticket = budget.begin(policy)
    ticket.charge(0.7)
    budget.end(ticket)
    with pytest.raises(Throttled) as refused:
        budget.begin(policy)
    assert refused.value.code == "ErrorServerBusy" and 59_000 < refused.value.backoff_ms <= 60_001
    assert budget.connections == 0


def test_micro_delays_grow_towards_the_cutoff():
    policy = resolve([Policy("P", {"EwsMaxBurst": 0, "EwsRechargeRate": 0, "EwsCutoffBalance": 1000})])
    budget = Budget(1, "a@example.org", policy)
    first = budget.begin(policy)
    assert first.delay == 0
    first.charge(0.25)
    second = budget.begin(policy)
    first.charge(0.5)
    third = budget.begin(policy)
    assert 0 < second.delay < third.delay <= 0.5
    for ticket in (first, second, third):
        budget.end(ticket)
    assert budget.connections == 0


def test_sleep_throttling_is_linear_above_cpu_start_percent():
    assert sleep_for(50, 75) == 0 and sleep_for(75, 75) == 0
    assert sleep_for(87.5, 75) == pytest.approx(0.25) and sleep_for(100, 75) == pytest.approx(0.5)
    assert sleep_for(100, None) == 0
    meter = CPUMeter(cores=2)
    start = meter._samples[0]  # noqa: SLF001 - driving the meter with chosen clocks
    assert meter.percent(start[0] + 2, start[1] + 2) == pytest.approx(50)  # 2 s of CPU in 2 s on 2 cores


# -- over the wire ---------------------------------------------------------------------------------
def _slow_request(server: RunningServer, user: str) -> tuple[socket.socket, bytes]:
    """Open a request whose body is held back: the server has received it (and admitted it to the
    caller's budget) but cannot answer until the rest arrives."""
    url = urlsplit(server.ews_url)
    body = envelope(GET_INBOX)
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Basic {token}\r\n"
            f"Content-Type: text/xml; charset=utf-8\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    sock.sendall(head.encode() + body[:20])
    return sock, body[20:]


def _finish(sock: socket.socket, rest: bytes) -> bytes:
    sock.sendall(rest)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def test_concurrency_limit_refuses_the_excess_request_only(server, server_store, users):
    alice, bob = users
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxConcurrency": 2})
    server_store.throttling.assign(alice.address, policy)
    held = [_slow_request(server, alice.address) for _ in range(2)]
    outcome = None
    for _ in range(50):  # until both held requests are admitted (they are on their way already)
        time.sleep(0.1)
        # One that lost the race to a probe was refused at once (an answer is waiting): open it again.
        answered = select.select([sock for sock, _ in held], [], [], 0)[0]
        for sock in answered:
            sock.close()
        held = [_slow_request(server, alice.address) if sock in answered else (sock, rest) for sock, rest in held]
        if answered:
            continue
        outcome = call(server, alice.address)
        if outcome != (200, "NoError"):
            break
    assert outcome == (500, "ErrorExceededConnectionCount")
    assert call(server, bob.address) == (200, "NoError")  # another caller's budget is its own
    for sock, rest in held:
        answer = _finish(sock, rest)
        assert answer.startswith(b"HTTP/1.1 200") and b"<m:ResponseCode>NoError</m:ResponseCode>" in answer
    assert call(server, alice.address) == (200, "NoError")  # released once the responses were sent


def test_cutoff_balance_answers_server_busy_until_recharged(server, server_store, users):
    alice, bob = users
    # No burst, no overdraft allowed: one request's time puts the balance below the cutoff; it
    # recharges at 10 ms per second, so a few milliseconds of work mean a few hundred ms of back-off.
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxBurst": 0, "EwsCutoffBalance": 0, "EwsRechargeRate": 36_000})
    server_store.throttling.assign(alice.address, policy)
    assert call(server, alice.address) == (200, "NoError")
    wait = backoff_ms(server, alice.address)
    assert wait > 0
    assert call(server, bob.address) == (200, "NoError")
    time.sleep(wait / 1000 + 0.05)
    assert call(server, alice.address) == (200, "NoError")  # recharged to zero: served again


def test_exchangelib_sees_server_busy_with_its_back_off(server, server_store, users):
    from exchangelib.errors import ErrorServerBusy

    alice, _ = users
    account = make_account(server, alice.address)
    account.inbox.refresh()  # exchangelib's own first requests (version probe, folder) go through first
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxBurst": 0, "EwsCutoffBalance": 0, "EwsRechargeRate": 0})
    server_store.throttling.assign(alice.address, policy)
    account.inbox.refresh()
    with pytest.raises(ErrorServerBusy) as busy:
        account.inbox.refresh()
    assert busy.value.back_off == 3600.0  # no recharge at all: an hour, the longest hint
    server_store.throttling.update(policy, {"EwsRechargeRate": None})  # unlimited: recovers at once
    account.inbox.refresh()


def test_impersonation_spends_the_service_accounts_own_budget(server, server_store, users):
    alice, bob = users
    service = new_mailbox(server_store, alice.address.split("@")[1], "svc")
    server_store.directory.grant_impersonation(service.address, "all")
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxBurst": 0, "EwsCutoffBalance": 0, "EwsRechargeRate": 0})

    def acting_as(mailbox: Mailbox) -> str:
        return f'<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{mailbox.address}' \
               '</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>'

    server_store.throttling.assign(alice.address, policy)
    assert call(server, alice.address) == (200, "NoError")
    assert call(server, alice.address)[1] == "ErrorServerBusy"
    assert call(server, service.address, header=acting_as(alice)) == (200, "NoError")  # not alice's budget
    server_store.throttling.assign(service.address, policy)
    assert call(server, service.address, header=acting_as(bob)) == (200, "NoError")
    assert call(server, service.address, header=acting_as(bob))[1] == "ErrorServerBusy"
    assert call(server, bob.address) == (200, "NoError")  # nor bob's


def test_find_count_limit_by_version_and_paging(server, server_store, users):
    alice, _ = users
    fill(server_store, alice, "inbox", 5)
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsFindCountLimit": 3})
    server_store.throttling.assign(alice.address, policy)
    paged = '<m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" BasePoint="Beginning"/>'
    # Before Exchange2010_SP1: the request fails with ErrorServerBusy, paged or not.
    assert call(server, alice.address, find_items(), "Exchange2007_SP1") == (500, "ErrorServerBusy")
    assert call(server, alice.address, find_items(paged), "Exchange2010") == (500, "ErrorServerBusy")
    # Exchange2010_SP1 and later without paging: the folder's response says so.
    assert call(server, alice.address, find_items(), "Exchange2010_SP1") == (200, "ErrorExceededFindCountLimit")
    # Paged: trimmed to the limit, and the page says it is not the last.
    root = parse(post(server.ews_url, envelope(find_items(paged), "Exchange2013"), alice.address, PASSWORD))
    folder = root.find(".//m:RootFolder", NS)
    assert codes(root) == ["NoError"] and len(folder.findall("t:Items/t:Message", NS)) == 3
    assert (folder.get("IncludesLastItemInRange"), folder.get("TotalItemsInView")) == ("false", "5")
    # Within the limit nothing changes, and each response gave its charge back.
    small = '<m:IndexedPageItemView MaxEntriesReturned="2" Offset="3" BasePoint="Beginning"/>'
    root = parse(post(server.ews_url, envelope(find_items(small), "Exchange2007_SP1"), alice.address, PASSWORD))
    assert codes(root) == ["NoError"] and root.find(".//m:RootFolder", NS).get("IncludesLastItemInRange") == "true"
    # exchangelib pages on: it reads every item, three at most per response.
    assert len(list(make_account(server, alice.address).inbox.all().only("subject"))) == 5


def test_subscription_limit(server, server_store, users):
    alice, _ = users
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxSubscriptions": 1})
    server_store.throttling.assign(alice.address, policy)
    pull = ('<m:Subscribe><m:PullSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
            '<t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:Timeout>10</t:Timeout>'
            '</m:PullSubscriptionRequest></m:Subscribe>')
    root = parse(post(server.ews_url, envelope(pull), alice.address, PASSWORD))
    assert codes(root) == ["NoError"]
    assert call(server, alice.address, pull) == (200, "ErrorExceededSubscriptionCount")
    first = root.find(".//m:SubscriptionId", NS).text
    unsubscribe = f"<m:Unsubscribe><m:SubscriptionId>{first}</m:SubscriptionId></m:Unsubscribe>"
    assert call(server, alice.address, unsubscribe) == (200, "NoError")
    assert call(server, alice.address, pull) == (200, "NoError")


def test_streaming_connections_are_held_by_the_hanging_connection_limit(server, server_store, users,
                                                                        monkeypatch):
    monkeypatch.setattr(streaming, "MINUTE", 1.5)
    alice, _ = users
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxConcurrency": 1})
    server_store.throttling.assign(alice.address, policy)
    subscribe = ('<m:Subscribe><m:StreamingSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
                 '<t:EventType>NewMailEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest>'
                 '</m:Subscribe>')
    root = parse(post(server.ews_url, envelope(subscribe), alice.address, PASSWORD))
    sid = root.find(".//m:SubscriptionId", NS).text
    stream = (f"<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>{sid}</t:SubscriptionId>"
              "</m:SubscriptionIds><m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents>")
    token = base64.b64encode(f"{alice.address}:{PASSWORD}".encode()).decode()
    # requests returns once the headers are in: the stream is open (and holds its connection) by then.
    first = requests.post(server.ews_url, data=envelope(stream), stream=True, timeout=30,
                          headers={"Content-Type": "text/xml; charset=utf-8", "Authorization": f"Basic {token}"})
    assert first.status_code == 200
    assert call(server, alice.address, stream) == (200, "ErrorExceededConnectionCount")
    # The open stream does not hold the caller's one ordinary connection.
    assert call(server, alice.address) == (200, "NoError")
    assert b"<m:ConnectionStatus>Closed</m:ConnectionStatus>" in first.content  # read to its end
    ended = requests.post(server.ews_url, data=envelope(stream), timeout=30,
                          headers={"Content-Type": "text/xml; charset=utf-8", "Authorization": f"Basic {token}"})
    assert b"<m:ResponseCode>NoError</m:ResponseCode>" in ended.content  # the slot was given back


def test_a_flooding_caller_does_not_stop_another(server, server_store, users):
    flooder, quiet = users
    policy = unique("Policy")
    server_store.throttling.add(policy, {"EwsMaxConcurrency": 3})
    server_store.throttling.assign(flooder.address, policy)
    with ThreadPoolExecutor(25) as pool:
        flood = [pool.submit(call, server, flooder.address) for _ in range(100)]
        served = [call(server, quiet.address) for _ in range(10)]
        outcomes = [f.result(timeout=120) for f in flood]
    assert served == [(200, "NoError")] * 10
    assert set(outcomes) <= {(200, "NoError"), (500, "ErrorExceededConnectionCount")}
    assert (500, "ErrorExceededConnectionCount") in outcomes and (200, "NoError") in outcomes


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_policies_and_assignment(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    ok(mailroom("mailbox", "add", "alice@example.org", "--password", "pw", data=data))
    added = ok(mailroom("throttling-policy", "new", "Apps", "--ews-max-concurrency", "2",
                        "--ews-cutoff-balance", "600000", "--ews-max-burst", "unlimited", data=data))
    assert "EwsMaxConcurrency=2" in added and "EwsMaxBurst=unlimited" in added
    ok(mailroom("throttling-policy", "new", "Org", "--default", "--ews-find-count-limit", "500", data=data))
    fails(mailroom("throttling-policy", "new", "Bad", "--cpu-start-percent", "101", data=data), "CPUStartPercent")
    fails(mailroom("throttling-policy", "new", "Apps", data=data), "already exists")
    fails(mailroom("mailbox", "set", "alice@example.org", "--throttling-policy", "Nope", data=data),
          "no throttling policy Nope")
    fails(mailroom("mailbox", "set", "alice@example.org", data=data), "--throttling-policy")
    got = dict(map(tuple, table_rows(ok(mailroom("throttling-policy", "get", "Apps", data=data)))))
    assert (got["EwsMaxConcurrency"], got["EwsMaxBurst"], got["EwsFindCountLimit"]) == ("2", "unlimited", "inherited")
    fails(mailroom("throttling-policy", "get", "Nope", data=data), "no throttling policy Nope")
    ok(mailroom("mailbox", "set", "alice@example.org", "--throttling-policy", "Apps", data=data))
    shown = {row[0]: row[1:] for row in table_rows(ok(mailroom("throttling-policy", "association", "alice@example.org",
                                                                data=data)))}
    assert shown["EwsMaxConcurrency"] == ["2", "Apps"]
    assert shown["EwsFindCountLimit"] == ["500", "Org"]
    assert shown["EwsRechargeRate"] == ["900000", GLOBAL]
    assert shown["EwsMaxBurst"] == ["unlimited", "Apps"]
    ok(mailroom("throttling-policy", "set", "Apps", "--unset", "EwsMaxConcurrency", "--ews-max-subscriptions",
                "3", data=data))
    rows = table_rows(ok(mailroom("throttling-policy", "list", data=data)))
    assert [r[:3] for r in rows if r[0]] == [[GLOBAL, "", ""], ["Apps", "", "1"], ["Org", "yes", "0"]]
    fails(mailroom("throttling-policy", "remove", "Apps", data=data), "assigned to 1 mailbox")
    ok(mailroom("mailbox", "set", "alice@example.org", "--no-throttling-policy", data=data))
    ok(mailroom("throttling-policy", "remove", "Apps", data=data))
    shown = {row[0]: row[1:] for row in table_rows(ok(mailroom("throttling-policy", "association", "alice@example.org",
                                                                data=data)))}
    assert shown["EwsMaxConcurrency"] == ["27", GLOBAL]


def test_cli_changes_reach_a_running_server(server, users, store_url):
    alice, _ = users
    assert call(server, alice.address) == (200, "NoError")
    policy = unique("Stopped")
    ok(mailroom("throttling-policy", "new", policy, "--ews-max-burst", "0", "--ews-cutoff-balance", "0",
                "--ews-recharge-rate", "0", "--database", store_url))
    ok(mailroom("mailbox", "set", alice.address, "--throttling-policy", policy, "--database", store_url))
    assert call(server, alice.address) == (200, "NoError")
    assert call(server, alice.address)[1] == "ErrorServerBusy"
    ok(mailroom("mailbox", "set", alice.address, "--no-throttling-policy", "--database", store_url))
    assert call(server, alice.address) == (200, "NoError")
