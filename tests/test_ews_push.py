"""Push notifications (Subscribe with PushSubscriptionRequest) on both back ends, delivered to a small
real HTTP listener on loopback and read with exchangelib's SendNotification parser: events and idle
StatusEvents arrive, each body valid against the EWS schema; an Unsubscribe answer ends the
subscription; failed posts are retried with back-off, then the subscription ends; events count as
delivered only once the client answered OK; a new subscription from the last watermark misses
nothing; impersonated subscriptions deliver the impersonated mailbox's events.

A StatusFrequency minute lasts ``MINUTE`` seconds here and the first retry waits ``RETRY`` seconds."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from exchangelib.properties import StatusEvent
from exchangelib.services import SendNotification

from mailroom.ews import push
from mailroom.store import ids as store_ids

from .conftest import RunningServer, make_account, new_mailbox
from .schema_check import problems
from .soap import NS, codes
from .test_ews_pull import fill, get_events, soap

MINUTE = 0.5
RETRY = 0.05
WAIT = 20.0  # seconds a test waits at most for a push to arrive


class Listener:
    """A push client: records every body posted to it and answers with ``answer(n)`` for the n-th post
    (an HTTP status and a SubscriptionStatus, "oversized" for an OK result padded past the answer size limit,
    or None for no SendNotificationResult at all)."""

    def __init__(self, protocol) -> None:  # noqa: ANN001 - an exchangelib protocol, to build answers
        self.bodies: list[bytes] = []
        self.answer: Callable[[int], tuple[int, str | None]] = lambda n: (200, "OK")
        self.arrived = threading.Condition()
        service = SendNotification(protocol=protocol)
        payloads = {"OK": service.ok_payload(), "Unsubscribe": service.unsubscribe_payload()}
        payloads["oversized"] = payloads["OK"].replace(b"?>", b"?>" + b" " * 70 * 1024, 1)
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with listener.arrived:
                    listener.bodies.append(body)
                    status, subscription_status = listener.answer(len(listener.bodies))
                    listener.arrived.notify_all()
                payload = payloads[subscription_status] if subscription_status else b"<html>no</html>"
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/push"
        self.parser = service
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[bytes]:
        """The first ``count`` bodies, once they arrived (failing after WAIT seconds)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.bodies) >= count, WAIT), self.bodies
            return self.bodies[:count]

    def notifications(self, body: bytes) -> list:
        assert problems(body) == []  # what the server sends is a valid SendNotification
        return list(self.parser.parse(body))

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(autouse=True)
def short_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(push, "MINUTE", MINUTE)


@pytest.fixture
def server(store_url, tmp_path) -> Iterator[RunningServer]:  # noqa: ANN001 - loopback allowed, fast retries
    running = RunningServer(store_url, tmp_path / "data", **{"notifications.push_allow": ["127.0.0.1"],
                                                             "notifications.push_retry_seconds": RETRY})
    yield running
    running.stop()
    assert not running.bad_responses, "\n".join(running.bad_responses)


@pytest.fixture
def listener(account) -> Iterator[Listener]:  # noqa: ANN001
    found = Listener(account.protocol)
    yield found
    found.close()


def events_of(notifications: list) -> list[tuple[str, str | None]]:
    return [(type(e).__name__, e.item_id.id if getattr(e, "item_id", None) else None)
            for note in notifications for e in note.events]


def ended(server, address: str, subscription_id: str, watermark: str) -> bool:  # noqa: ANN001
    """Whether the push subscription is gone (GetEvents, which serves only pull subscriptions, says
    not found rather than not a pull subscription; unlike Unsubscribe, asking changes nothing)."""
    answer = soap(server, address, get_events(subscription_id, watermark))
    assert codes(answer) in (["ErrorSubscriptionNotFound"], ["ErrorInvalidPullSubscriptionId"])
    return codes(answer) == ["ErrorSubscriptionNotFound"]


def wait_until_ended(server, address: str, subscription_id: str, watermark: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + WAIT
    while not ended(server, address, subscription_id, watermark):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_events_are_pushed_then_status_when_idle(account, server_store, mailbox, listener):
    sid, watermark = account.inbox.subscribe_to_push(listener.url, status_frequency=1)
    assert watermark
    created = fill(server_store, mailbox, "inbox", 1)
    item = store_ids.item_id(mailbox.guid, created[0])
    first = listener.notifications(listener.wait_for(1)[0])
    assert [note.subscription_id for note in first] == [sid]
    assert events_of(first) == [("CreatedEvent", item), ("NewMailEvent", item)]
    assert first[0].previous_watermark == watermark

    status = listener.notifications(listener.wait_for(2)[1])  # nothing happens for a StatusFrequency
    assert [type(e) for note in status for e in note.events] == [StatusEvent]
    assert status[0].events[0].watermark == first[0].events[-1].watermark  # nothing was skipped or repeated


def test_an_unsubscribe_answer_ends_the_subscription(server, account, server_store, mailbox, listener):
    listener.answer = lambda n: (200, "Unsubscribe")
    sid, watermark = account.inbox.subscribe_to_push(listener.url, status_frequency=1)
    fill(server_store, mailbox, "inbox", 1)
    listener.wait_for(1)
    wait_until_ended(server, mailbox.address, sid, watermark)
    fill(server_store, mailbox, "inbox", 1)
    time.sleep(MINUTE * 2)
    assert len(listener.bodies) == 1  # nothing more: no events, no status


def test_failed_posts_are_retried_with_back_off_then_the_subscription_ends(server, account, server_store,
                                                                         mailbox, listener):
    listener.answer = lambda n: (500, None)
    sid, watermark = account.inbox.subscribe_to_push(listener.url, status_frequency=1)
    fill(server_store, mailbox, "inbox", 1)
    wait_until_ended(server, mailbox.address, sid, watermark)
    # The first post, then retries after 0.05, 0.1, 0.2 and 0.4 s; the next wait (0.8 s) would exceed
    # the StatusFrequency (0.5 s here), so the subscription ended.
    assert len(listener.bodies) == 5
    assert len(set(listener.bodies)) == 1  # the same notification each time


@pytest.mark.parametrize("failure", [(500, "OK"), (200, None)], ids=["http-error", "no-result"])
def test_events_count_as_delivered_only_once_answered_ok(account, server_store, mailbox, listener, failure):
    listener.answer = lambda n: failure if n <= 2 else (200, "OK")
    account.inbox.subscribe_to_push(listener.url, status_frequency=1, event_types=["CreatedEvent"])
    first = fill(server_store, mailbox, "inbox", 1)
    bodies = listener.wait_for(3)
    assert bodies[0] == bodies[1] == bodies[2]  # resent until acknowledged
    second = fill(server_store, mailbox, "inbox", 1)
    later = listener.wait_for(4)[3]
    assert events_of(listener.notifications(bodies[2])) == [
        ("CreatedEvent", store_ids.item_id(mailbox.guid, first[0]))]
    assert events_of(listener.notifications(later)) == [("CreatedEvent", store_ids.item_id(mailbox.guid, second[0]))]


def test_an_oversized_answer_is_a_failed_post(server, account, server_store, mailbox, listener):
    listener.answer = lambda n: (200, "oversized")  # an OK result after 70 KiB of padding: over the 64 KiB limit
    sid, watermark = account.inbox.subscribe_to_push(listener.url, status_frequency=1)
    fill(server_store, mailbox, "inbox", 1)
    wait_until_ended(server, mailbox.address, sid, watermark)
    assert len(listener.bodies) == 5


def test_a_new_subscription_from_the_last_watermark_misses_nothing(account, server_store, mailbox, listener):
    listener.answer = lambda n: (200, "OK" if n == 1 else "Unsubscribe")
    account.inbox.subscribe_to_push(listener.url, status_frequency=1, event_types=["CreatedEvent"])
    first = fill(server_store, mailbox, "inbox", 1)
    last_watermark = listener.notifications(listener.wait_for(1)[0])[0].events[-1].watermark
    missed = fill(server_store, mailbox, "inbox", 2)  # delivered, but answered with Unsubscribe: never acknowledged
    listener.wait_for(2)

    listener.answer = lambda n: (200, "OK")
    account.inbox.subscribe_to_push(listener.url, status_frequency=1, event_types=["CreatedEvent"],
                                    watermark=last_watermark)
    resumed = listener.notifications(listener.wait_for(3)[2])
    assert events_of(resumed) == [("CreatedEvent", store_ids.item_id(mailbox.guid, i)) for i in missed]
    assert store_ids.item_id(mailbox.guid, first[0]) not in {i for _, i in events_of(resumed)}


def test_impersonated_subscriptions_deliver_the_impersonated_mailbox(server, server_store, mailbox, listener):
    domain = mailbox.address.split("@")[1]
    service = new_mailbox(server_store, domain, "svc")
    server_store.directory.grant_impersonation(service.address, "all")
    impersonated = make_account(server, mailbox.address, impersonator=service.address)
    impersonated.inbox.subscribe_to_push(listener.url, status_frequency=1, event_types=["CreatedEvent"])
    fill(server_store, service, "inbox", 1)  # the service account's own mail is not the subscription's
    created = fill(server_store, mailbox, "inbox", 1)
    note = listener.notifications(listener.wait_for(1)[0])
    assert events_of(note) == [("CreatedEvent", store_ids.item_id(mailbox.guid, created[0]))]


def test_push_subscribe_requests(server, mailbox, listener):
    def request(url: str, frequency: str = "<t:StatusFrequency>1</t:StatusFrequency>") -> str:
        return ('<m:Subscribe><m:PushSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
                f"<t:EventType>NewMailEvent</t:EventType></t:EventTypes>{frequency}<t:URL>{url}</t:URL>"
                "</m:PushSubscriptionRequest></m:Subscribe>")

    answer = soap(server, mailbox.address, request(listener.url, ""))  # StatusFrequency defaults to 30
    assert codes(answer) == ["NoError"]
    assert answer.find(".//m:SubscriptionId", NS).text and answer.find(".//m:Watermark", NS).text
    assert codes(soap(server, mailbox.address, request("ftp://127.0.0.1/push"))) == ["ErrorInvalidPushSubscriptionUrl"]
    assert codes(soap(server, mailbox.address, request("not a url"))) == ["ErrorInvalidPushSubscriptionUrl"]
    faulted = soap(server, mailbox.address, request(listener.url, "<t:StatusFrequency>1441</t:StatusFrequency>"))
    assert faulted.find(".//faultcode") is not None
