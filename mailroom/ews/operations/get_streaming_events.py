"""GetStreamingEvents: deliver streaming subscriptions' events over one open HTTP response for
ConnectionTimeout minutes (mailroom/ews/streaming.py).

Every subscription is checked first, as on Exchange: if any is unknown, another identity's or not a
streaming one, the answer is one ordinary Error message naming the failing ids in
ErrorSubscriptionIds, and nothing is streamed. A caller at its HangingConnectionLimit of open streams
gets ErrorExceededConnectionCount."""

from __future__ import annotations

from lxml import etree

from mailroom.notify.subscriptions import Subscription
from mailroom.throttling.budget import Throttled

from .. import notifications
from ..errors import EWSError, SOAPFault
from ..service import Operation, require
from ..streaming import Stream
from ..xml import m, sub, t

MAX_SUBSCRIPTIONS = 200  # per connection, as on Exchange


class GetStreamingEvents(Operation):
    name = "GetStreamingEvents"
    min_version = "Exchange2010_SP1"

    def execute(self, request: etree._Element) -> etree._Element:
        names = list(dict.fromkeys((e.text or "").strip() for e in require(request, m("SubscriptionIds"))))
        minutes = notifications.minutes(require(request, m("ConnectionTimeout")).text, "ConnectionTimeout", 30)
        if not names:
            raise SOAPFault("ErrorSchemaValidation", "SubscriptionIds needs at least one SubscriptionId.")
        root, messages = self.response()
        if len(names) > MAX_SUBSCRIPTIONS:
            self.error(messages, EWSError("ErrorInvalidArgument",
                                          f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection."))
            return root
        found: list[Subscription] = []
        failed: list[tuple[str, EWSError]] = []
        for name in names:
            try:
                found.append(notifications.subscription_of(self.ctx.store, self.ctx.identity, name, kind="streaming"))
            except EWSError as err:
                failed.append((name, err))
        if failed:
            listed = sub(self.error(messages, failed[0][1]), m("ErrorSubscriptionIds"))
            for name, _ in failed:
                sub(listed, t("SubscriptionId"), name)
            return root
        if self.ctx.ticket is not None:
            try:
                self.ctx.ticket.hang()  # held until the stream ends (mailroom/server/app.py)
            except Throttled as exc:
                self.error(messages, EWSError(exc.code, exc.message))
                return root
        self.success(messages)
        self.ctx.stream = Stream(self.ctx.store, self.ctx.identity, found, minutes, root.getroottree().getroot())
        return root

