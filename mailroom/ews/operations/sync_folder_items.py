"""SyncFolderItems: a folder's item changes since a SyncState, read from the change journal.

Without a SyncState the client first gets every item as a Create, enumerated by id up to the
folder's newest item at the snapshot (the database's last seq then); the changes after that seq
follow from the journal, collapsed per item: created then deleted is nothing, created then
changed is one Create, read-only changes are a ReadFlagChange. A moved item left its folder under
its old id (Delete) and arrived under a new one (Create)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.store import ids
from mailroom.store.model import Folder, JournalEntry, Mailbox

from .. import syncstate
from ..errors import SOAPFault
from ..items import item_id_attrs, mime_of, render
from ..paths import Shape
from ..service import Operation, Written, is_private, require
from ..syncstate import SyncState
from ..xml import Writer, bool_text, m

_CHUNK = 1000  # journal entries read at a time
_MAX_SCAN = 20_000  # journal entries one call reads at most before answering with what it has


@dataclass
class _Track:
    """What the journal says happened to one item id since the client's seq."""

    known: bool  # the client holds it (its first entry is not its arrival)
    exists: bool = True
    changed: bool = False  # anything beyond the read flag changed (or it arrived again)
    read: bool = False


class SyncFolderItems(Operation):
    name = "SyncFolderItems"
    writes = True

    def execute(self, request: etree._Element) -> Written:
        shape = Shape.parse(require(request, m("ItemShape")))
        target = require(request, m("SyncFolderId"))
        if len(target) != 1:
            raise SOAPFault("ErrorSchemaValidation", "SyncFolderId needs exactly one folder id.")
        limit = _max_changes(require(request, m("MaxChangesReturned")).text)
        scope = request.findtext(m("SyncScope"), "NormalItems").strip()
        if scope not in ("NormalItems", "NormalAndAssociatedItems"):
            raise SOAPFault("ErrorSchemaValidation", f"SyncScope {scope!r} is not valid.")
        ignore_el = request.find(m("Ignore"))
        out = self.written()

        def one(folder_el: etree._Element, out: Written) -> None:
            mailbox, folder = self.folder_from(folder_el, Access.READ)
            ignored = {self.decode_id(i.get("Id") or "", ids.KIND_ITEM)[1] for i in
                       (ignore_el if ignore_el is not None else [])}
            text = request.findtext(m("SyncState"))
            state = (syncstate.decode(text, mailbox, syncstate.ITEMS, folder.id) if text and text.strip()
                     else self._start(mailbox, folder))
            sync = _Sync(self, mailbox, folder, limit, scope == "NormalAndAssociatedItems", ignored)
            state, done = sync.run(state)
            out.leaf("m:SyncState", syncstate.encode(state, mailbox))
            out.leaf("m:IncludesLastItemInRange", bool_text(done))
            out.start("m:Changes")
            sync.render(out, shape)
            out.end()

        self.each_written(out, [target[0]], one)
        return out

    def _start(self, mailbox: Mailbox, folder: Folder) -> SyncState:
        seq, newest = self.ctx.store.journal.snapshot(mailbox, folder.id)
        return SyncState(syncstate.ITEMS, folder.id, seq, cursor=0, walk_max=newest)


class _Sync:
    """One SyncFolderItems answer: at most ``limit`` changes, in the order they happened."""

    def __init__(self, op: Operation, mailbox: Mailbox, folder: Folder, limit: int, associated: bool,
                 ignored: set[int]) -> None:
        self.op, self.store = op, op.ctx.store
        self.mailbox, self.folder, self.limit, self.associated, self.ignored = (
            mailbox, folder, limit, associated, ignored)
        self.created: list[int] = []  # from the initial enumeration
        self.tracks: dict[int, _Track] = {}  # from the journal, in order of first appearance
        self.hide_private = op.ctx.hides_private(mailbox)

    def run(self, state: SyncState) -> tuple[SyncState, bool]:
        """Collect the changes; returns the state to hand out and whether it covers everything."""
        if state.cursor is not None:
            found = self.store.journal.walk(self.mailbox, self.folder.id, state.cursor, state.walk_max,
                                            self.associated, self.limit + 1, self.hide_private)
            self.created = found[:self.limit]
            if len(found) > self.limit:
                return SyncState(syncstate.ITEMS, self.folder.id, state.seq, found[self.limit - 1],
                                 state.walk_max), False
        seq, done = self._tail(state.seq, self.limit - len(self.created))
        return SyncState(syncstate.ITEMS, self.folder.id, seq), done

    def _tail(self, after: int, budget: int) -> tuple[int, bool]:
        """Fold journal entries after ``after`` into per-item tracks until one more item would not
        fit in ``budget``; returns the seq reached and whether that is the end of the journal."""
        journal = self.store.journal
        last, seq, scanned = journal.last_seq(self.mailbox), after, 0
        while True:
            entries = journal.of_folder_items(self.mailbox, self.folder.id, seq, last, _CHUNK)
            for entry in entries:
                events = self._events(entry)
                fresh = {i for i, _ in events if i not in self.tracks}
                if (self.tracks or self.created) and len(self.tracks) + len(fresh) > budget:
                    return seq, False  # (the first entry always goes through, so every call progresses)
                for item_id, event in events:
                    self._fold(item_id, event)
                seq = entry.seq
            scanned += len(entries)
            if len(entries) < _CHUNK:
                return last, True
            if scanned >= _MAX_SCAN:
                return seq, False

    def _events(self, entry: JournalEntry) -> list[tuple[int, str]]:
        events = []
        if entry.action == "moved" and entry.old_folder_id == self.folder.id and entry.old_object_id is not None:
            events.append((entry.old_object_id, "deleted"))
        if entry.folder_id == self.folder.id:
            events.append((entry.object_id, "created" if entry.action in ("moved", "copied") else entry.action))
        return events

    def _fold(self, item_id: int, event: str) -> None:
        track = self.tracks.get(item_id)
        if track is None:
            track = self.tracks[item_id] = _Track(known=event != "created")
        track.exists = event != "deleted"
        track.changed |= event in ("created", "modified")
        track.read |= event == "read"

    # -- rendering ---------------------------------------------------------------------------------
    def render(self, out: Writer, shape: Shape) -> None:
        plan: list[tuple[str, int]] = [("Create", i) for i in self.created]
        walked = set(self.created)  # already sent as they are now
        for item_id, track in self.tracks.items():
            if not track.exists:
                if track.known:
                    plan.append(("Delete", item_id))
            elif not track.known:
                plan.append(("Create", item_id))
            elif (track.changed or track.read) and item_id not in walked:
                plan.append(("Update" if track.changed else "ReadFlagChange", item_id))
        plan = [(kind, i) for kind, i in plan if i not in self.ignored]
        wanted = [i for kind, i in plan if kind != "Delete"]
        loaded = dict(zip(wanted, self.store.items.get_many(self.mailbox, wanted, with_extended=bool(shape.extended))
                          if wanted else [], strict=True))
        want_mime = shape.include_mime or "MimeContent" in shape.fields
        for kind, item_id in plan:
            item = loaded.get(item_id)
            if kind == "Delete":
                self._delete(out, item_id)
            elif item is None or item.folder_id != self.folder.id or (
                    item.props.get("IsAssociated") and not self.associated):
                continue  # gone again since the journal was read; the next sync says so
            elif self.hide_private and is_private(item):  # as if absent: gone, if the client had it
                if kind != "Create":
                    self._delete(out, item_id)
            elif kind == "ReadFlagChange":
                out.start("t:ReadFlagChange")
                out.leaf("t:ItemId", None, item_id_attrs(self.mailbox, item))
                out.leaf("t:IsRead", bool_text(bool(item.props.get("IsRead"))))
                out.end()
            else:
                mime = mime_of(self.op.ctx, self.mailbox, item) if want_mime else None
                out.start(_CHANGE_TAGS[kind])
                render(out, self.mailbox, item, shape, self.op.ctx, mime=mime)
                out.end()

    def _delete(self, out: Writer, item_id: int) -> None:
        out.start("t:Delete")
        out.leaf("t:ItemId", None, {"Id": ids.item_id(self.mailbox.guid, item_id)})
        out.end()


_CHANGE_TAGS = {"Create": "t:Create", "Update": "t:Update"}


def _max_changes(text: str | None) -> int:
    """MaxChangesReturned, 1 to 512 (MaxSyncChangesReturnedType); anything else fails schema validation."""
    try:
        value = int((text or "").strip())
    except ValueError:
        value = 0
    if not 1 <= value <= 512:
        raise SOAPFault("ErrorSchemaValidation", f"MaxChangesReturned {text!r} is not between 1 and 512.")
    return value

