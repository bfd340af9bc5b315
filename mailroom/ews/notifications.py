"""What pull notifications look like in EWS: watermarks, subscription look-up and events.

A watermark is a journal seq of the mailbox's database, signed like a SyncState (syncstate.py) so
one from another mailbox, an edited one or garbage is refused with ErrorInvalidWatermark. Events
after a watermark are the journal entries after that seq, so a client that comes back with its
last watermark (on the same subscription or a new one) misses nothing and gets nothing twice.
"""

from __future__ import annotations

from functools import lru_cache

from lxml import etree

from mailroom.access.identity import Identity
from mailroom.notify import subscriptions
from mailroom.notify.subscriptions import Subscription
from mailroom.store import Store, ids
from mailroom.store.model import JournalEntry, Mailbox

from . import syncstate
from .errors import EWSError, SOAPFault
from .syncstate import SyncState
from .xml import bool_text, sub, t

MAX_EVENTS = 50  # per GetEvents, as Exchange
_CHUNK = 500  # journal entries read at a time
_MAX_SCAN = 5000  # journal entries one GetEvents reads at most (filtered-out ones count too)


@lru_cache(maxsize=8192)
def watermark(mailbox: Mailbox, seq: int) -> str:
    """Cached: one commit's events go to every subscription of the mailbox with the same watermarks."""
    return syncstate.encode(SyncState(syncstate.WATERMARK, 0, seq), mailbox)


def seq_of(text: str | None, mailbox: Mailbox, last: int) -> int:
    """The seq a watermark carries, if this server issued it for this mailbox (and it is not ahead of the journal)."""
    try:
        seq = syncstate.decode(text or "", mailbox, syncstate.WATERMARK, 0).seq
    except EWSError as exc:
        raise invalid_watermark() from exc
    if seq > last:
        raise invalid_watermark()
    return seq


def minutes(text: str | None, what: str, most: int) -> int:
    """Minutes from 1 to ``most`` (the schema's range for ``what``); anything else fails schema validation."""
    try:
        value = int((text or "").strip())
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise SOAPFault("ErrorSchemaValidation", f"{what} {text!r} is not between 1 and {most} minutes.")
    return value


def invalid_watermark() -> EWSError:
    return EWSError("ErrorInvalidWatermark", "The watermark is not valid for this mailbox.")


def subscription_of(store: Store, identity: Identity, text: str | None, kind: str | None = None) -> Subscription:
    """The caller's live subscription ``text`` names; using it restarts its timeout. With ``kind``,
    it must be of that kind (GetEvents reads pull subscriptions, GetStreamingEvents streaming ones)."""
    try:
        found = subscriptions.registry(store).get((text or "").strip(), identity)
    except subscriptions.SubscriptionNotFound as exc:
        raise EWSError("ErrorSubscriptionNotFound", "No such subscription: it may have expired.") from exc
    except subscriptions.SubscriptionAccessDenied as exc:
        raise EWSError("ErrorSubscriptionAccessDenied", "The subscription belongs to someone else.") from exc
    if kind is not None and found.kind != kind:
        if kind == "streaming":
            raise EWSError("ErrorInvalidSubscription", "This is not a streaming subscription.")
        raise EWSError("ErrorInvalidPullSubscriptionId", "This is not a pull subscription.")
    return found


class JournalView:
    """The journal of one mailbox as one delivery pass reads it: subscriptions at the same place
    share each read, so a pass over many subscriptions costs a few queries, not a few per subscription."""

    def __init__(self, store: Store, mailbox: Mailbox) -> None:
        self.store = store
        self.mailbox = mailbox
        self.last = store.journal.last_seq(mailbox)  # read first: every entry up to it is committed
        self._inbox: int | None = None
        self._calendar: int | None = None
        self._pages: dict[int, list[JournalEntry]] = {}

    @property
    def inbox(self) -> int:
        if self._inbox is None:
            self._inbox = self.store.folders.distinguished(self.mailbox, "inbox").id
        return self._inbox

    @property
    def calendar(self) -> int:
        if self._calendar is None:
            self._calendar = self.store.folders.distinguished(self.mailbox, "calendar").id
        return self._calendar

    def since(self, position: int) -> list[JournalEntry]:
        found = self._pages.get(position)
        if found is None:
            found = self._pages[position] = self.store.journal.since(self.mailbox, position, _CHUNK)
        return found


def collect(view: JournalView, subscription: Subscription,
            after: int) -> tuple[list[tuple[str, JournalEntry]], int, bool]:
    """The subscription's events after seq ``after`` (at most MAX_EVENTS, never splitting one
    entry's events), the seq they reach and whether more may follow."""
    events: list[tuple[str, JournalEntry]] = []
    position, scanned = after, 0
    while True:
        entries = view.since(position)
        for entry in entries:
            names = ([n for n in subscriptions.event_types(entry, view.inbox, view.calendar)
                      if n in subscription.event_types] if subscription.concerns(entry) else [])
            if events and len(events) + len(names) > MAX_EVENTS:
                return events, position, True
            events += [(name, entry) for name in names]
            position = entry.seq
        scanned += len(entries)
        if len(entries) < _CHUNK:
            return events, max(position, view.last), False
        if scanned >= _MAX_SCAN:
            return events, position, True


def notification(parent: etree._Element, tag: str, mailbox: Mailbox, subscription: Subscription, after: int,
                 events: list[tuple[str, JournalEntry]], more: bool) -> etree._Element:
    """A Notification (element ``tag``) of ``events``, which follow seq ``after``."""
    note = sub(parent, tag)
    sub(note, t("SubscriptionId"), subscription.id)
    sub(note, t("PreviousWatermark"), watermark(mailbox, after))
    sub(note, t("MoreEvents"), bool_text(more))
    for name, entry in events:
        render_event(note, name, entry, mailbox)
    return note


def render_event(parent: etree._Element, name: str, entry: JournalEntry, mailbox: Mailbox) -> None:
    """One event, in BaseObjectChangedEventType / MovedCopiedEventType order. Ids carry no
    ChangeKey: the journal does not say which kind of ChangeKey an item has."""
    event = sub(parent, t(name))
    sub(event, t("Watermark"), watermark(mailbox, entry.seq))
    sub(event, t("TimeStamp"), entry.committed)
    kind = "Item" if entry.object_kind == "item" else "Folder"
    sub(event, t(f"{kind}Id"), Id=_object_id(mailbox, kind, entry.object_id))
    parent_id = entry.folder_id if entry.folder_id is not None else entry.object_id  # only the root has none
    sub(event, t("ParentFolderId"), Id=ids.folder_id(mailbox.guid, parent_id))
    if name in ("MovedEvent", "CopiedEvent"):
        old = entry.old_object_id if entry.old_object_id is not None else entry.object_id
        sub(event, t(f"Old{kind}Id"), Id=_object_id(mailbox, kind, old))
        old_parent = entry.old_folder_id if entry.old_folder_id is not None else parent_id
        sub(event, t("OldParentFolderId"), Id=ids.folder_id(mailbox.guid, old_parent))


def _object_id(mailbox: Mailbox, kind: str, row_id: int) -> str:
    return ids.item_id(mailbox.guid, row_id) if kind == "Item" else ids.folder_id(mailbox.guid, row_id)
