"""Subscription limits and notification opt-out: a mailbox has at most its throttling policy's
EwsMaxSubscriptions live subscriptions (SubscribeToAllFolders counts as one; refused
subscriptions do not count); a mailbox whose notifications an administrator turned off,
or a session that asked for none, gets ErrorAccessDenied from Subscribe and nothing else changes."""

from __future__ import annotations

from mailroom.notify import optout

from .conftest import PASSWORD, new_mailbox
from .soap import NS, codes, envelope, parse, post
from .test_ews_pull import pull_request, soap
from .test_ews_streaming import subscribe as streaming_request

PUSH = ('<m:Subscribe><m:PushSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
        "<t:EventType>NewMailEvent</t:EventType></t:EventTypes><t:URL>{}</t:URL>"
        "</m:PushSubscriptionRequest></m:Subscribe>")
STREAMING = streaming_request(' SubscribeToAllFolders="true"',
                              "<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>")


def subscription_id(answer) -> str:  # noqa: ANN001
    assert codes(answer) == ["NoError"]
    return answer.find(".//m:SubscriptionId", NS).text


def test_a_mailbox_has_at_most_its_limit(server, server_store, mailbox):
    policy = f"two-subscriptions-{mailbox.id}"
    server_store.throttling.add(policy, {"EwsMaxSubscriptions": 2})
    server_store.throttling.assign(mailbox.address, policy)
    first = subscription_id(soap(server, mailbox.address, pull_request()))  # all folders: one subscription
    for url in ("http://127.0.0.1:9/", "http://169.254.169.254/"):  # refused URLs are not kept
        assert codes(soap(server, mailbox.address, PUSH.format(url))) == ["ErrorInvalidPushSubscriptionUrl"]
    subscription_id(soap(server, mailbox.address, STREAMING))
    assert codes(soap(server, mailbox.address, pull_request())) == ["ErrorExceededSubscriptionCount"]
    assert codes(soap(server, mailbox.address, STREAMING)) == ["ErrorExceededSubscriptionCount"]
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    subscription_id(soap(server, bob.address, pull_request()))  # another mailbox has its own count
    unsubscribe = f"<m:Unsubscribe><m:SubscriptionId>{first}</m:SubscriptionId></m:Unsubscribe>"
    assert codes(soap(server, mailbox.address, unsubscribe)) == ["NoError"]
    subscription_id(soap(server, mailbox.address, pull_request()))


def test_a_mailbox_opted_out_of_notifications(server, server_store, mailbox):
    kept = subscription_id(soap(server, mailbox.address, pull_request()))
    optout.set_enabled(server_store, mailbox, False)
    for request in (pull_request(), STREAMING, PUSH.format("http://10.0.0.1/push")):
        answer = soap(server, mailbox.address, request)
        assert codes(answer) == ["ErrorAccessDenied"]
        assert "turned off for this mailbox" in answer.find(".//m:MessageText", NS).text
    find = ('<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
            '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>')
    assert codes(soap(server, mailbox.address, find)) == ["NoError"]  # nothing else is affected
    unsubscribe = f"<m:Unsubscribe><m:SubscriptionId>{kept}</m:SubscriptionId></m:Unsubscribe>"
    assert codes(soap(server, mailbox.address, unsubscribe)) == ["NoError"]
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    subscription_id(soap(server, bob.address, pull_request()))  # other mailboxes are not affected
    optout.set_enabled(server_store, mailbox, True)
    subscription_id(soap(server, mailbox.address, pull_request()))


def test_a_session_without_notifications(server, mailbox):
    def subscribe(header: str | None) -> object:
        response = post(server.ews_url, envelope(pull_request()), mailbox.address, PASSWORD,
                        headers={optout.SESSION_HEADER: header} if header is not None else None)
        return parse(response)

    for value in ("1", "true", "Yes"):
        assert codes(subscribe(value)) == ["ErrorAccessDenied"]
    subscription_id(subscribe("0"))
    subscription_id(subscribe(None))  # (the second of the two this server allows a caller)
