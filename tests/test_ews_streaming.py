"""Streaming notifications (Subscribe with StreamingSubscriptionRequest, GetStreamingEvents), through
exchangelib and raw SOAP, on both back ends: events committed while a stream is open arrive on it,
several subscriptions share one connection, keep-alives and a final ConnectionStatus Closed end the
response, other identities are refused, and an unsubscribed subscription gets nothing more.

A ConnectionTimeout minute lasts ``MINUTE`` seconds here and keep-alives come every ``KEEPALIVE``."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
import requests
from exchangelib.services import SubscribeToStreaming
from lxml import etree

from mailroom.ews import streaming
from mailroom.store import ids as store_ids

from .conftest import PASSWORD, new_mailbox
from .schema_check import problems
from .soap import NS, codes, envelope, parse, post
from .test_ews_pull import fill, soap, summary

MINUTE = 2.0
KEEPALIVE = 0.4


@pytest.fixture(autouse=True)
def short_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "MINUTE", MINUTE)
    monkeypatch.setattr(streaming, "KEEPALIVE", KEEPALIVE)


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list]:
    """Run ``work`` in a thread; its result lands in the returned list."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    time.sleep(0.3)  # let the stream open (events committed before it opens are delivered too)
    return thread, result


def get_streaming_events(subscription_ids: list[str], minutes: int = 1) -> str:
    listed = "".join(f"<t:SubscriptionId>{s}</t:SubscriptionId>" for s in subscription_ids)
    return (f"<m:GetStreamingEvents><m:SubscriptionIds>{listed}</m:SubscriptionIds>"
            f"<m:ConnectionTimeout>{minutes}</m:ConnectionTimeout></m:GetStreamingEvents>")


def raw_stream(server, address: str, subscription_ids: list[str]) -> requests.Response:  # noqa: ANN001
    return post(server.ews_url, envelope(get_streaming_events(subscription_ids)), address, PASSWORD)


def envelopes(payload: bytes) -> list[etree._Element]:
    """The complete SOAP envelopes one streamed response holds, each valid against the EWS schema."""
    docs = re.split(rb"(?=<\?xml )", payload)[1:]  # each begins with its XML declaration
    assert b"".join(docs) == payload
    for doc in docs:
        assert problems(doc) == []
    return [etree.fromstring(doc) for doc in docs]


def statuses(roots: list[etree._Element]) -> list[str]:
    return [root.find(".//m:ConnectionStatus", NS).text for root in roots]


def notified(roots: list[etree._Element]) -> list[tuple[str, str, str]]:
    """(subscription id, event type, item id) of every streamed event, in order."""
    return [(note.find("t:SubscriptionId", NS).text, etree.QName(event).localname,
             event.find("t:ItemId", NS).get("Id"))
            for root in roots for note in root.iterfind(".//t:Notification", NS)
            for event in note if event.find("t:ItemId", NS) is not None]


def test_events_committed_while_streaming_arrive(account, server_store, mailbox):
    sid = account.inbox.subscribe_to_streaming()
    thread, result = in_thread(lambda: list(account.inbox.get_streaming_events(sid, connection_timeout=1)))
    created = fill(server_store, mailbox, "inbox", 2)
    server_store.items.delete(mailbox, created[0])
    fill(server_store, mailbox, "drafts", 1)  # the subscription is to the Inbox only
    thread.join(MINUTE * 3)
    assert not thread.is_alive()  # ConnectionStatus Closed ended the stream
    events = [e for note in result[0] for e in note.events]
    inbox = account.inbox.id
    first, second = (store_ids.item_id(mailbox.guid, i) for i in created)
    assert summary(events) == [("CreatedEvent", first, inbox), ("NewMailEvent", first, inbox),
                               ("CreatedEvent", second, inbox), ("NewMailEvent", second, inbox),
                               ("DeletedEvent", first, inbox)]
    assert {note.subscription_id for note in result[0]} == {sid}


def test_two_subscriptions_share_one_connection_until_it_closes(server, account, server_store, mailbox):
    inbox_sid = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    drafts_sid = account.drafts.subscribe_to_streaming(event_types=["CreatedEvent"])
    thread, result = in_thread(lambda: raw_stream(server, mailbox.address, [inbox_sid, drafts_sid]))
    in_inbox = fill(server_store, mailbox, "inbox", 1)
    time.sleep(KEEPALIVE * 2)
    in_drafts = fill(server_store, mailbox, "drafts", 2)
    thread.join(MINUTE * 3)
    response = result[0]
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    roots = envelopes(response.content)
    assert notified(roots) == [(inbox_sid, "CreatedEvent", store_ids.item_id(mailbox.guid, i)) for i in in_inbox] + [
        (drafts_sid, "CreatedEvent", store_ids.item_id(mailbox.guid, i)) for i in in_drafts]
    found = statuses(roots)
    assert found[-1] == "Closed" and set(found[:-1]) == {"OK"}
    keepalives = [r for r in roots if r.find(".//m:Notifications", NS) is None and statuses([r]) == ["OK"]]
    assert len(keepalives) >= 2  # the opening one and at least one after KEEPALIVE of silence


def test_another_identity_is_refused_and_unknown_ids_are_not_found(server, account, server_store, mailbox):
    sid = account.inbox.subscribe_to_streaming()
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    refused = parse(raw_stream(server, bob.address, [sid]))
    assert codes(refused) == ["ErrorSubscriptionAccessDenied"]
    assert [e.text for e in refused.iterfind(".//m:ErrorSubscriptionIds/t:SubscriptionId", NS)] == [sid]
    missing = parse(raw_stream(server, mailbox.address, [sid, "nosuchsubscription"]))
    assert codes(missing) == ["ErrorSubscriptionNotFound"]
    assert [e.text for e in missing.iterfind(".//m:ErrorSubscriptionIds/t:SubscriptionId", NS)] == [
        "nosuchsubscription"]
    pull_sid, watermark = account.inbox.subscribe_to_pull()
    assert codes(parse(raw_stream(server, mailbox.address, [pull_sid]))) == ["ErrorInvalidSubscription"]
    get_events = (f"<m:GetEvents><m:SubscriptionId>{sid}</m:SubscriptionId>"
                  f"<m:Watermark>{watermark}</m:Watermark></m:GetEvents>")
    assert codes(soap(server, mailbox.address, get_events)) == ["ErrorInvalidPullSubscriptionId"]


def subscribe(attrs: str, inner: str) -> str:
    return f"<m:Subscribe><m:StreamingSubscriptionRequest{attrs}>{inner}</m:StreamingSubscriptionRequest></m:Subscribe>"


def test_streaming_subscribe_requests(server, mailbox):
    events = "<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>"
    folders = '<t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds>'
    for attrs, inner in ((' SubscribeToAllFolders="true"', events), ("", folders + events)):
        answer = soap(server, mailbox.address, subscribe(attrs, inner))
        assert codes(answer) == ["NoError"]
        assert answer.find(".//m:SubscriptionId", NS).text
        assert answer.find(".//m:Watermark", NS) is None  # streaming subscriptions have none
    assert codes(soap(server, mailbox.address, subscribe("", events))) == ["ErrorInvalidSubscriptionRequest"]


def test_unsubscribe_ends_delivery(server, account, server_store, mailbox, monkeypatch):
    kept = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    dropped = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    thread, result = in_thread(lambda: raw_stream(server, mailbox.address, [kept, dropped]))
    before = fill(server_store, mailbox, "inbox", 1)
    time.sleep(KEEPALIVE)
    unsubscribe = f"<m:Unsubscribe><m:SubscriptionId>{dropped}</m:SubscriptionId></m:Unsubscribe>"
    assert codes(soap(server, mailbox.address, unsubscribe)) == ["NoError"]
    after = fill(server_store, mailbox, "inbox", 1)
    thread.join(MINUTE * 3)
    roots = envelopes(result[0].content)
    item = store_ids.item_id
    assert notified(roots) == [(kept, "CreatedEvent", item(mailbox.guid, before[0])),
                               (dropped, "CreatedEvent", item(mailbox.guid, before[0])),
                               (kept, "CreatedEvent", item(mailbox.guid, after[0]))]

    monkeypatch.setattr(streaming, "MINUTE", 600.0)  # only the unsubscribe can end this stream in time
    thread, result = in_thread(lambda: raw_stream(server, mailbox.address, [kept]))
    assert codes(soap(server, mailbox.address, unsubscribe.replace(dropped, kept))) == ["NoError"]
    thread.join(30)
    assert not thread.is_alive()
    assert statuses(envelopes(result[0].content)) == ["OK", "Closed"]


def test_exchangelib_knows_the_streaming_request(account):
    """exchangelib sends StreamingSubscriptionRequest for all folders too (folders=None)."""
    sid = SubscribeToStreaming(account=account).get(folders=None, event_types=SubscribeToStreaming.EVENT_TYPES)
    assert isinstance(sid, str) and sid


def test_reconnecting_misses_nothing_and_repeats_nothing(server, account, server_store, mailbox):
    """Events committed between two connections of one subscription arrive on the second, once."""
    sid = account.inbox.subscribe_to_streaming(event_types=["CreatedEvent"])
    thread, result = in_thread(lambda: raw_stream(server, mailbox.address, [sid]))
    during = fill(server_store, mailbox, "inbox", 1)
    thread.join(MINUTE * 3)
    between = fill(server_store, mailbox, "inbox", 2)  # no connection open
    thread, again = in_thread(lambda: raw_stream(server, mailbox.address, [sid]))
    thread.join(MINUTE * 3)
    item = store_ids.item_id
    assert notified(envelopes(result[0].content)) == [(sid, "CreatedEvent", item(mailbox.guid, during[0]))]
    assert notified(envelopes(again[0].content)) == [(sid, "CreatedEvent", item(mailbox.guid, i)) for i in between]
