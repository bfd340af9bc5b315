"""GetEvents: a pull subscription's events after a watermark, at most 50 at a time (MoreEvents
says there are more), or a StatusEvent with the current watermark when nothing happened.

As on Exchange, the subscription keeps its own place: each call resumes where the previous one
stopped (exchangelib pages by repeating the first watermark), or later if the request's Watermark
is later. A client that lost a response, or its subscription, subscribes again with the last
watermark it holds and gets exactly the events after it."""

from __future__ import annotations

from lxml import etree

from .. import notifications
from ..service import Operation, require
from ..xml import m, sub, t


class GetEvents(Operation):
    name = "GetEvents"

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()
        subscription_id = require(request, m("SubscriptionId")).text
        given = require(request, m("Watermark")).text

        def one(_: None, msg: etree._Element) -> None:
            store, mailbox = self.ctx.store, self.ctx.mailbox
            subscription = notifications.subscription_of(store, self.ctx.identity, subscription_id, kind="pull")
            with subscription.reading:
                view = notifications.JournalView(store, mailbox)
                after = max(notifications.seq_of(given, mailbox, view.last), subscription.delivered)
                events, reached, more = notifications.collect(view, subscription, after)
                subscription.delivered = reached
            note = notifications.notification(msg, m("Notification"), mailbox, subscription, after, events, more)
            if not events:
                sub(sub(note, t("StatusEvent")), t("Watermark"), notifications.watermark(mailbox, reached))

        self.each(messages, [None], one)
        return root
