"""Work started for one identity is never served under another, even when several callers use it
at the same moment: alice's pull subscription is polled concurrently by alice, by bob and by a
service account impersonating alice (a different identity: another caller) while items arrive.
Only alice is answered, and she gets every event exactly once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mailroom.store import ids as store_ids

from .conftest import PASSWORD, new_mailbox
from .soap import NS, codes, envelope, parse, post
from .test_ews_pull import fill, get_events, pull_request, soap

POLLS_EACH = 12


def test_a_subscription_answers_only_its_maker_under_concurrency(server, server_store, mailbox):
    domain = mailbox.address.split("@")[1]
    bob = new_mailbox(server_store, domain, "bob")
    service = new_mailbox(server_store, domain, "svc")
    server_store.directory.grant_impersonation(service.address, "all")
    made = soap(server, mailbox.address, pull_request())
    sid, watermark = made.find(".//m:SubscriptionId", NS).text, made.find(".//m:Watermark", NS).text
    as_alice = (f"<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{mailbox.address}"
                "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>")

    def poll(caller: str) -> tuple[str, list[str], list[str]]:
        header = as_alice if caller == service.address else ""
        root = parse(post(server.ews_url, envelope(get_events(sid, watermark), header_extra=header), caller, PASSWORD))
        return caller, codes(root), [e.get("Id") for e in root.findall(".//t:CreatedEvent/t:ItemId", NS)]

    created: list[int] = []
    start = threading.Barrier(2)

    def arrive() -> None:
        start.wait()
        for _ in range(10):
            created.extend(fill(server_store, mailbox, "inbox", 1))

    callers = [mailbox.address, bob.address, service.address] * POLLS_EACH
    with ThreadPoolExecutor(max_workers=8) as pool:
        arriving = pool.submit(arrive)
        start.wait()
        answers = list(pool.map(poll, callers))
        arriving.result()
    seen = [item for caller, _, items in answers if caller == mailbox.address for item in items]
    while True:  # what arrived after the last concurrent poll
        caller, found_codes, items = poll(mailbox.address)
        assert found_codes == ["NoError"]
        if not items:
            break
        seen += items

    for caller, found_codes, items in answers:
        if caller == mailbox.address:
            assert found_codes == ["NoError"]
        else:  # bob, and the impersonating service account: refused, and given nothing
            assert (found_codes, items) == (["ErrorSubscriptionAccessDenied"], []), caller
    assert sorted(seen) == sorted(store_ids.item_id(mailbox.guid, i) for i in created)
