"""Subscribe: pull, push and streaming subscriptions to a mailbox's changes.

A pull or push subscription starts at the Watermark the request gives (a client resuming where it
stopped) or at the journal's present; a streaming one at the present. All live in this process's
registry (mailroom/notify); a push subscription is delivered from the moment it is made
(mailroom/ews/push.py), to a URL the guard allows (mailroom/notify/guard.py).

Subscribe fails with ErrorAccessDenied when the mailbox (or the session) has notifications turned
off, and with ErrorExceededSubscriptionCount when the caller holds as many as it may."""

from __future__ import annotations

from lxml import etree

from mailroom.notify import guard, optout, subscriptions

from .. import notifications
from ..errors import EWSError, SOAPFault
from ..schema import schema
from ..service import Operation, boolean, require
from ..xml import local, m, sub, t

STREAMING_TIMEOUT = 30  # minutes a streaming subscription outlives its last connection, as on Exchange
STATUS_FREQUENCY = 30  # minutes between push status notifications when the request names none, as on Exchange
_KINDS = {"PullSubscriptionRequest": "pull", "PushSubscriptionRequest": "push",
          "StreamingSubscriptionRequest": "streaming"}


class Subscribe(Operation):
    name = "Subscribe"

    def execute(self, request: etree._Element) -> etree._Element:
        if len(request) != 1:
            raise SOAPFault("ErrorSchemaValidation", "Subscribe needs exactly one subscription request.")
        root, messages = self.response()
        self.each(messages, [request[0]], self._one)
        return root

    def _one(self, req: etree._Element, msg: etree._Element) -> None:
        kind = _KINDS.get(local(req.tag))
        if kind is None:
            raise SOAPFault("ErrorSchemaValidation", f"unexpected element {local(req.tag)} in Subscribe")
        types = self._event_types(require(req, t("EventTypes")))
        store, mailbox = self.ctx.store, self.ctx.mailbox
        registry = subscriptions.registry(store)
        if kind == "streaming":
            folders = self._folders(req)
            self._allowed()
            subscription = self._add(types, folders, STREAMING_TIMEOUT, store.journal.last_seq(mailbox), kind)
            sub(msg, m("SubscriptionId"), subscription.id)
            return
        push = None
        if kind == "pull":
            timeout = notifications.minutes(require(req, t("Timeout")).text, "Timeout", 1440)
        else:
            frequency = req.find(t("StatusFrequency"))
            status_minutes = (notifications.minutes(frequency.text, "StatusFrequency", 1440) if frequency is not None
                              else STATUS_FREQUENCY)
            url = (require(req, t("URL")).text or "").strip()
            push = subscriptions.PushTarget(url, status_minutes, self.ctx.version)
            timeout = 3 * status_minutes  # only a safety net: its delivery ends it (push.py)
        folders = self._folders(req)
        last = store.journal.last_seq(mailbox)
        given = req.find(t("Watermark"))  # the schema's place; exchangelib sends it as m:Watermark
        given = given if given is not None else req.find(m("Watermark"))
        start = notifications.seq_of(given.text, mailbox, last) if given is not None else last
        self._allowed()
        if push is not None:
            try:
                guard.from_settings(registry.settings).resolve(push.url)
            except guard.PushUrlRefused as exc:
                raise EWSError("ErrorInvalidPushSubscriptionUrl", str(exc)) from exc
        subscription = self._add(types, folders, timeout, start, kind, push)
        sub(msg, m("SubscriptionId"), subscription.id)
        sub(msg, m("Watermark"), notifications.watermark(mailbox, start))

    def _allowed(self) -> None:
        """Refuse a session, or a mailbox, that has notifications turned off."""
        if not self.ctx.notifications:
            raise EWSError("ErrorAccessDenied", f"This session asked for no notifications ({optout.SESSION_HEADER}).")
        if not optout.enabled(self.ctx.store, self.ctx.mailbox):
            raise EWSError("ErrorAccessDenied", "Notifications are turned off for this mailbox.")

    def _add(self, types: frozenset[str], folders: frozenset[int] | None, timeout: int, start: int, kind: str,
             push: subscriptions.PushTarget | None = None) -> subscriptions.Subscription:
        """Register it, within the EwsMaxSubscriptions of the caller's policy (SubscribeToAllFolders
        counts one)."""
        limit = self.ctx.limit("EwsMaxSubscriptions")
        try:
            return subscriptions.registry(self.ctx.store).add(self.ctx.identity, folders, types, timeout, start,
                                                              kind, push, limit)
        except subscriptions.SubscriptionLimit as exc:
            raise EWSError("ErrorExceededSubscriptionCount",
                           f"You have exceeded the maximum number of subscriptions ({limit}).") from exc

    def _folders(self, req: etree._Element) -> frozenset[int] | None:
        """The folder ids the subscription watches, None for all; exactly one of the two ways must be used."""
        flag = req.get("SubscribeToAllFolders")
        every = boolean(flag, "SubscribeToAllFolders") if flag is not None else False
        listed = req.find(t("FolderIds"))
        if every == (listed is not None):
            raise EWSError("ErrorInvalidSubscriptionRequest",
                           "Give either FolderIds or SubscribeToAllFolders=\"true\", not both or neither.")
        if every:
            return None
        found = set()
        for folder_el in listed:
            mailbox, folder = self.folder_from(folder_el)
            if mailbox.id != self.ctx.mailbox.id:
                raise EWSError("ErrorInvalidSubscriptionRequest", "All folders must be in the caller's mailbox.")
            found.add(folder.id)
        return frozenset(found)

    @staticmethod
    def _event_types(node: etree._Element) -> frozenset[str]:
        allowed = schema().enumeration("NotificationEventTypeType")
        names = [(e.text or "").strip() for e in node.iter(t("EventType"))]
        if not names or any(n not in allowed for n in names):
            raise SOAPFault("ErrorSchemaValidation", f"EventTypes {names} are not NotificationEventTypeType values.")
        return frozenset(names)
