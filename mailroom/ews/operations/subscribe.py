"""Subscribe: pull and streaming subscriptions to a mailbox's changes (push is not supported yet).

A pull subscription starts at the Watermark the request gives (a client resuming where it stopped)
or at the journal's present; a streaming one at the present. Both live in this process's registry
(mailroom/notify)."""

from __future__ import annotations

from lxml import etree

from mailroom.notify import subscriptions

from .. import notifications
from ..errors import EWSError, SOAPFault
from ..schema import schema
from ..service import Operation, boolean, require
from ..xml import local, m, sub, t

STREAMING_TIMEOUT = 30  # minutes a streaming subscription outlives its last connection, as on Exchange


class Subscribe(Operation):
    name = "Subscribe"

    def execute(self, request: etree._Element) -> etree._Element:
        if len(request) != 1:
            raise SOAPFault("ErrorSchemaValidation", "Subscribe needs exactly one subscription request.")
        root, messages = self.response()
        self.each(messages, [request[0]], self._one)
        return root

    def _one(self, req: etree._Element, msg: etree._Element) -> None:
        kind = local(req.tag)
        if kind == "PushSubscriptionRequest":
            raise EWSError("ErrorInvalidOperation", f"{kind} is not supported yet; use pull or streaming.")
        if kind not in ("PullSubscriptionRequest", "StreamingSubscriptionRequest"):
            raise SOAPFault("ErrorSchemaValidation", f"unexpected element {kind} in Subscribe")
        types = self._event_types(require(req, t("EventTypes")))
        store, mailbox = self.ctx.store, self.ctx.mailbox
        if kind == "StreamingSubscriptionRequest":
            folders = self._folders(req)
            subscription = self._add(folders, types, STREAMING_TIMEOUT, store.journal.last_seq(mailbox), True)
            sub(msg, m("SubscriptionId"), subscription.id)
            return
        timeout = notifications.minutes(require(req, t("Timeout")).text, "Timeout", 1440)
        folders = self._folders(req)
        last = store.journal.last_seq(mailbox)
        given = req.find(t("Watermark"))  # the schema's place; exchangelib sends it as m:Watermark
        given = given if given is not None else req.find(m("Watermark"))
        start = notifications.seq_of(given.text, mailbox, last) if given is not None else last
        subscription = self._add(folders, types, timeout, start, False)
        sub(msg, m("SubscriptionId"), subscription.id)
        sub(msg, m("Watermark"), notifications.watermark(mailbox, start))

    def _add(self, folders: frozenset[int] | None, types: frozenset[str], timeout: int, start: int,
             streaming: bool) -> subscriptions.Subscription:
        """Register it, within the caller's EwsMaxSubscriptions (SubscribeToAllFolders counts one)."""
        limit = self.ctx.limit("EwsMaxSubscriptions")
        try:
            return subscriptions.registry(self.ctx.store).add(self.ctx.identity, folders, types, timeout, start,
                                                              streaming, limit)
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

