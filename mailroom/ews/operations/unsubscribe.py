"""Unsubscribe: end a pull or streaming subscription of the caller's (a stream delivering it stops)."""

from __future__ import annotations

from lxml import etree

from mailroom.notify import subscriptions

from .. import notifications
from ..service import Operation, require
from ..xml import m


class Unsubscribe(Operation):
    name = "Unsubscribe"

    def execute(self, request: etree._Element) -> etree._Element:
        root, messages = self.response()
        subscription_id = require(request, m("SubscriptionId")).text

        def one(_: None, msg: etree._Element) -> None:
            found = notifications.subscription_of(self.ctx.store, self.ctx.identity, subscription_id)
            subscriptions.registry(self.ctx.store).remove(found.id, self.ctx.identity)

        self.each(messages, [None], one)
        return root
