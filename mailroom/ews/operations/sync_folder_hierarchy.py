"""SyncFolderHierarchy: the folders of a subtree that were created, changed or deleted since a
SyncState, read from the change journal.

The SyncState holds the ids of the folders the client holds (a mailbox has few folders): a folder
the journal names is a Create when it is in the subtree and new to the client, an Update when the
client has it, and a Delete when the client has it but it is no longer in the subtree (deleted, or
moved out)."""

from __future__ import annotations

from lxml import etree

from mailroom.store import ids
from mailroom.store.model import Folder, Mailbox

from .. import syncstate
from ..errors import SOAPFault
from ..folders import render, viewer
from ..paths import Shape
from ..service import Operation, require
from ..syncstate import SyncState
from ..xml import bool_text, el, m, sub, t

_CHUNK = 1000  # journal entries read at a time


class SyncFolderHierarchy(Operation):
    name = "SyncFolderHierarchy"

    def execute(self, request: etree._Element) -> etree._Element:
        shape = Shape.parse(require(request, m("FolderShape")))
        target = request.find(m("SyncFolderId"))
        root, messages = self.response()

        def one(folder_el: etree._Element, msg: etree._Element) -> None:
            mailbox, top = self.folder_from(folder_el)
            text = request.findtext(m("SyncState"))
            state = syncstate.decode(text, mailbox, syncstate.HIERARCHY, top.id) if text and text.strip() else None
            seq = self.ctx.store.journal.last_seq(mailbox)  # read first: later changes come next time
            plan, known = self._plan(mailbox, top, state, seq, bool(shape.extended))
            sub(msg, m("SyncState"), syncstate.encode(
                SyncState(syncstate.HIERARCHY, top.id, seq, known=tuple(sorted(known))), mailbox))
            sub(msg, m("IncludesLastFolderInRange"), bool_text(True))
            changes = sub(msg, m("Changes"))
            for kind, folder in plan:
                if isinstance(folder, Folder):
                    render(sub(changes, t(kind)), mailbox, folder, shape, viewer(self, mailbox, folder))
                else:
                    sub(sub(changes, t(kind)), t("FolderId"), Id=ids.folder_id(mailbox.guid, folder))

        if target is not None and len(target) != 1:
            raise SOAPFault("ErrorSchemaValidation", "SyncFolderId needs exactly one folder id.")
        self.each(messages, [target[0] if target is not None else el(t("DistinguishedFolderId"), Id="root")], one)
        return root

    def _plan(self, mailbox: Mailbox, top: Folder, state: SyncState | None, seq: int,
              extended: bool) -> tuple[list[tuple[str, Folder | int]], set[int]]:
        """The changes to send (a folder to render, or the id of a deleted one) and the folder ids
        the client then holds."""
        if state is not None:
            named = self._named(mailbox, state.seq, seq)
            if not named:
                return [], set(state.known)
        folders, _ = self.ctx.store.folders.find(mailbox, top.id, deep=True, extended_keys=extended)
        folders = self.visible_folders(mailbox, folders)
        if state is None:
            return [("Create", f) for f in folders], {f.id for f in folders}
        current = {f.id: f for f in folders}
        known = set(state.known)
        plan: list[tuple[str, Folder | int]] = []
        for folder_id in named:
            if folder_id in current:
                plan.append(("Update" if folder_id in known else "Create", current[folder_id]))
                known.add(folder_id)
            elif folder_id in known:
                plan.append(("Delete", folder_id))
                known.discard(folder_id)
        return plan, known

    def _named(self, mailbox: Mailbox, after: int, up_to: int) -> list[int]:
        """The folders the journal names in (after, up_to], in order of their first change."""
        named: dict[int, None] = {}
        while True:
            entries = self.ctx.store.journal.of_folders(mailbox, after, up_to, _CHUNK)
            named.update(dict.fromkeys(e.object_id for e in entries))
            if len(entries) < _CHUNK:
                return list(named)
            after = entries[-1].seq
