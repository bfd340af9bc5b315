"""Pull notifications (Subscribe, GetEvents, Unsubscribe) from the change journal, through
exchangelib and raw SOAP, on both back ends: every change is one event, seen once; a new
subscription from an older watermark gets exactly the events after it; pages hold 50 events;
subscriptions belong to whoever made them."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from exchangelib import CalendarItem, EWSDateTime, Folder, Message
from exchangelib.properties import StatusEvent
from exchangelib.services import SubscribeToPull

from mailroom.access.identity import Identity
from mailroom.notify import subscriptions
from mailroom.store import Store
from mailroom.store import ids as store_ids
from mailroom.store.model import Body, Mailbox, NewItem

from .conftest import PASSWORD, new_domain, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post


def fill(store: Store, mailbox: Mailbox, folder: str, count: int) -> list[int]:
    folder_id = store.folders.distinguished(mailbox, folder).id
    return store.items.create_many(mailbox, folder_id, [
        NewItem(props={"Subject": f"message {n}"}, body=Body("Text", "x")) for n in range(count)])


def pull(account, subscription_id: str, watermark: str) -> tuple[list, list]:  # noqa: ANN001
    """Every page GetEvents gives now: (the events, (count, MoreEvents) per page)."""
    events, pages = [], []
    for note in account.inbox.get_events(subscription_id, watermark):
        found = [e for e in note.events if not isinstance(e, StatusEvent)]
        events += found
        pages.append((len(found), note.more_events))
    return events, pages


def summary(events: list) -> list[tuple[str, str | None, str | None]]:
    """(event type, the changed object's id, its parent folder's id) per event."""
    return [(type(e).__name__, (e.item_id or e.folder_id).id, e.parent_folder_id.id) for e in events]


def all_folders(account) -> tuple[str, str]:  # noqa: ANN001
    return SubscribeToPull(account=account).get(folders=None, event_types=SubscribeToPull.EVENT_TYPES,
                                                watermark=None, timeout=10)


def test_each_change_is_one_event_seen_once(account):
    sid, watermark = all_folders(account)
    inbox = account.inbox.id
    message = Message(account=account, folder=account.inbox, subject="one")
    message.save()
    first_id = message.id
    message.subject = "two"
    message.save(update_fields=["subject"])
    message.is_read = True
    message.save(update_fields=["is_read"])
    archive = Folder(parent=account.inbox, name="Archive")
    archive.save()
    archive_id = archive.id
    message.move(archive)
    moved_id = message.id
    assert moved_id != first_id
    message.delete()
    archive.delete()

    events, pages = pull(account, sid, watermark)
    assert summary(events) == [
        ("CreatedEvent", first_id, inbox), ("NewMailEvent", first_id, inbox),
        ("ModifiedEvent", first_id, inbox), ("ModifiedEvent", first_id, inbox),
        ("CreatedEvent", archive_id, inbox),
        ("MovedEvent", moved_id, archive_id),
        ("DeletedEvent", moved_id, archive_id),
        ("DeletedEvent", archive_id, inbox),
    ]
    moved = events[5]
    assert (moved.old_item_id.id, moved.old_parent_folder_id.id) == (first_id, inbox)
    assert pages == [(8, False)]
    assert len({e.watermark for e in events}) == 7  # the Created and NewMail of one delivery share one
    again = list(account.inbox.get_events(sid, events[-1].watermark))
    assert [type(e).__name__ for note in again for e in note.events] == ["StatusEvent"]
    assert again[0].events[0].watermark == events[-1].watermark


def test_folder_and_event_type_filters(account, server_store, mailbox):
    sid, watermark = account.inbox.subscribe_to_pull(event_types=["CreatedEvent"])
    ours = fill(server_store, mailbox, "inbox", 2)
    fill(server_store, mailbox, "drafts", 3)
    server_store.items.delete(mailbox, ours[0])
    events, _ = pull(account, sid, watermark)
    assert [(type(e).__name__, e.item_id.id) for e in events] == [
        ("CreatedEvent", store_ids.item_id(mailbox.guid, i)) for i in ours]


def test_a_new_subscription_from_an_older_watermark_gets_exactly_what_followed(account, server_store, mailbox):
    sid, watermark = account.inbox.subscribe_to_pull()
    created = fill(server_store, mailbox, "inbox", 3)
    events, _ = pull(account, sid, watermark)
    assert [e.item_id.id for e in events] == [store_ids.item_id(mailbox.guid, i) for i in created for _ in (1, 2)]
    after_first = events[1].watermark
    account.inbox.unsubscribe(sid)
    fill(server_store, mailbox, "inbox", 1)

    sid, start = account.inbox.subscribe_to_pull(watermark=after_first)
    assert start == after_first
    events, _ = pull(account, sid, start)
    assert len(events) == 6
    expected = [store_ids.item_id(mailbox.guid, i) for i in created[1:] for _ in (1, 2)]
    assert [e.item_id.id for e in events[:4]] == expected
    assert pull(account, sid, events[-1].watermark)[0] == []


def test_many_changes_come_in_pages_of_fifty(account, server_store, mailbox):
    sid, watermark = account.drafts.subscribe_to_pull()
    created = fill(server_store, mailbox, "drafts", 120)
    events, pages = pull(account, sid, watermark)
    assert pages == [(50, True), (50, True), (20, False)]
    assert [e.item_id.id for e in events] == [store_ids.item_id(mailbox.guid, i) for i in created]


def soap(server, address: str, body: str) -> object:  # noqa: ANN001
    return parse(post(server.ews_url, envelope(body), address, PASSWORD))


def get_events(subscription_id: str, watermark: str) -> str:
    return (f"<m:GetEvents><m:SubscriptionId>{subscription_id}</m:SubscriptionId>"
            f"<m:Watermark>{watermark}</m:Watermark></m:GetEvents>")


def pull_request(extra: str = "", attrs: str = ' SubscribeToAllFolders="true"', timeout: str = "10") -> str:
    return (f"<m:Subscribe><m:PullSubscriptionRequest{attrs}><t:EventTypes><t:EventType>CreatedEvent</t:EventType>"
            f"</t:EventTypes>{extra}<t:Timeout>{timeout}</t:Timeout></m:PullSubscriptionRequest></m:Subscribe>")


def test_subscriptions_belong_to_their_maker(server, account, server_store, mailbox):
    sid, watermark = account.inbox.subscribe_to_pull()
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    assert codes(soap(server, bob.address, get_events(sid, watermark))) == ["ErrorSubscriptionAccessDenied"]
    unsubscribe = f"<m:Unsubscribe><m:SubscriptionId>{sid}</m:SubscriptionId></m:Unsubscribe>"
    assert codes(soap(server, bob.address, unsubscribe)) == ["ErrorSubscriptionAccessDenied"]
    fill(server_store, mailbox, "inbox", 1)
    assert len(pull(account, sid, watermark)[0]) == 2  # still alice's, still working

    bobs = soap(server, bob.address, pull_request())
    bob_watermark = bobs.find(".//m:Watermark", NS).text
    assert codes(soap(server, mailbox.address, pull_request(f"<t:Watermark>{bob_watermark}</t:Watermark>"))) == [
        "ErrorInvalidWatermark"]
    assert codes(soap(server, mailbox.address, get_events(sid, bob_watermark))) == ["ErrorInvalidWatermark"]


def test_unknown_and_ended_subscriptions_are_not_found(server, account, mailbox):
    sid, watermark = account.inbox.subscribe_to_pull()
    assert codes(soap(server, mailbox.address, get_events("nosuchsubscription", watermark))) == [
        "ErrorSubscriptionNotFound"]
    account.inbox.unsubscribe(sid)
    assert codes(soap(server, mailbox.address, get_events(sid, watermark))) == ["ErrorSubscriptionNotFound"]
    unsubscribe = f"<m:Unsubscribe><m:SubscriptionId>{sid}</m:SubscriptionId></m:Unsubscribe>"
    assert codes(soap(server, mailbox.address, unsubscribe)) == ["ErrorSubscriptionNotFound"]


def test_bad_subscribe_requests(server, account, mailbox):
    address = mailbox.address
    assert codes(soap(server, address, pull_request("<t:Watermark>AAAA</t:Watermark>"))) == ["ErrorInvalidWatermark"]
    assert codes(soap(server, address, pull_request(attrs=""))) == ["ErrorInvalidSubscriptionRequest"]
    both = '<t:FolderIds><t:DistinguishedFolderId Id="inbox"/></t:FolderIds>'
    assert codes(soap(server, address, pull_request(attrs=' SubscribeToAllFolders="true"').replace(
        "<t:EventTypes>", both + "<t:EventTypes>"))) == ["ErrorInvalidSubscriptionRequest"]
    assert fault_code(soap(server, address, pull_request(timeout="1441"))) == "ErrorSchemaValidation"
    events = "<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>"
    push = (f'<m:Subscribe><m:PushSubscriptionRequest SubscribeToAllFolders="true">{events}'
            "<t:StatusFrequency>1</t:StatusFrequency><t:URL>https://client.example/ews</t:URL>"
            "</m:PushSubscriptionRequest></m:Subscribe>")
    assert codes(soap(server, address, push)) == ["ErrorInvalidPushSubscriptionUrl"]  # client.example: no address


def test_a_subscription_expires_after_its_timeout_without_use(store):
    registry = subscriptions.Subscriptions("test")
    identity = Identity.owner(new_mailbox(store, new_domain(store), "carol"))
    live = registry.add(identity, None, frozenset({"CreatedEvent"}), 1, 0)
    assert registry.get(live.id, identity) is live
    live.expires = time.monotonic() - 1
    with pytest.raises(subscriptions.SubscriptionNotFound):
        registry.get(live.id, identity)


def test_calendar_changes_are_free_busy_changes(account):
    sid, watermark = all_folders(account)
    calendar, inbox = account.calendar.id, account.inbox.id
    start = EWSDateTime(2026, 12, 1, 9, tzinfo=account.default_timezone)
    meeting = CalendarItem(account=account, folder=account.calendar, subject="Review", start=start,
                           end=start + timedelta(hours=1))
    meeting.save()
    created_id = meeting.id
    meeting.subject = "Review, moved"
    meeting.save(update_fields=["subject"])
    message = Message(account=account, folder=account.inbox, subject="not in the calendar")
    message.save()
    meeting.move(account.inbox)  # out of the calendar: its time is free again

    events, _ = pull(account, sid, watermark)
    free_busy = [(e.item_id.id, e.parent_folder_id.id) for e in events if type(e).__name__ == "FreeBusyChangedEvent"]
    assert free_busy == [(created_id, calendar), (created_id, calendar), (meeting.id, inbox)]
