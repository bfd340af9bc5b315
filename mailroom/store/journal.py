"""Reading the change journal: the one source for sync, notifications and replication."""

from __future__ import annotations

from sqlalchemy import Engine, Row, Select, and_, func, or_, select

from . import tables as t
from .engine import reading
from .model import JournalEntry, Mailbox
from .sqlquery import NOT_PRIVATE


def _entry(r: Row) -> JournalEntry:
    return JournalEntry(seq=r.seq, mailbox_id=r.mailbox_id, object_kind=r.object_kind, object_id=r.object_id,
                        action=r.action, folder_id=r.folder_id, old_folder_id=r.old_folder_id,
                        old_object_id=r.old_object_id, committed=r.committed)


def _last_seq(mailbox: Mailbox) -> Select:
    return select(func.max(t.journal.c.seq)).where(t.journal.c.database_id == mailbox.database_id)


class Journal:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def since(self, mailbox: Mailbox, after_seq: int, limit: int = 512) -> list[JournalEntry]:
        """Entries of one mailbox committed after ``after_seq``, oldest first."""
        j = t.journal.c
        with reading(self.engine) as conn:
            rows = conn.execute(select(t.journal).where(
                j.database_id == mailbox.database_id, j.mailbox_id == mailbox.id, j.seq > after_seq,
            ).order_by(j.seq).limit(limit)).all()
        return [_entry(r) for r in rows]

    def last_seq(self, mailbox: Mailbox) -> int:
        with reading(self.engine) as conn:
            return int(conn.scalar(_last_seq(mailbox)) or 0)

    def snapshot(self, mailbox: Mailbox, folder_id: int) -> tuple[int, int]:
        """The database's last seq and the folder's highest item id, read in one statement so they
        agree: every item of the folder committed by that seq has an id up to that one, and every
        later one (writers of a database are serialised) a higher id."""
        c = t.items.c
        newest = select(func.max(c.id)).where(c.folder_id == folder_id, c.mailbox_id == mailbox.id).scalar_subquery()
        with reading(self.engine) as conn:
            last, top = conn.execute(select(_last_seq(mailbox).scalar_subquery(), newest)).one()
        return int(last or 0), int(top or 0)

    def walk(self, mailbox: Mailbox, folder_id: int, after_id: int, up_to_id: int, associated: bool,
             limit: int, hide_private: bool = False) -> list[int]:
        """Ids of the folder's items in (after_id, up_to_id], ascending: an initial enumeration by
        id cursor that no change in between can make skip or repeat an item (without the private
        ones when ``hide_private``)."""
        c = t.items.c
        query = select(c.id).where(c.folder_id == folder_id, c.mailbox_id == mailbox.id, c.id > after_id,
                                   c.id <= up_to_id)
        if not associated:
            query = query.where(c.is_associated.is_(False))
        if hide_private:
            query = query.where(NOT_PRIVATE)
        with reading(self.engine) as conn:
            return list(conn.scalars(query.order_by(c.id).limit(limit)))

    def of_folder_items(self, mailbox: Mailbox, folder_id: int, after_seq: int, up_to_seq: int,
                        limit: int) -> list[JournalEntry]:
        """Item entries in (after_seq, up_to_seq] that change what the folder holds: changes in
        it and moves out of it, oldest first."""
        j = t.journal.c
        with reading(self.engine) as conn:
            rows = conn.execute(select(t.journal).where(
                j.mailbox_id == mailbox.id, j.seq > after_seq, j.seq <= up_to_seq, j.object_kind == "item",
                or_(j.folder_id == folder_id, and_(j.old_folder_id == folder_id, j.action == "moved")),
            ).order_by(j.seq).limit(limit)).all()
        return [_entry(r) for r in rows]

    def of_folders(self, mailbox: Mailbox, after_seq: int, up_to_seq: int, limit: int) -> list[JournalEntry]:
        """Folder entries of the mailbox in (after_seq, up_to_seq], oldest first."""
        j = t.journal.c
        with reading(self.engine) as conn:
            rows = conn.execute(select(t.journal).where(
                j.mailbox_id == mailbox.id, j.seq > after_seq, j.seq <= up_to_seq, j.object_kind == "folder",
            ).order_by(j.seq).limit(limit)).all()
        return [_entry(r) for r in rows]
