"""Reading the change journal: the one source for sync, notifications and replication."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from . import tables as t
from .engine import reading
from .model import JournalEntry, Mailbox


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
        return [JournalEntry(seq=r.seq, mailbox_id=r.mailbox_id, object_kind=r.object_kind, object_id=r.object_id,
                             action=r.action, folder_id=r.folder_id, old_folder_id=r.old_folder_id,
                             old_object_id=r.old_object_id, committed=r.committed) for r in rows]

    def last_seq(self, mailbox: Mailbox) -> int:
        with reading(self.engine) as conn:
            return int(conn.scalar(select(func.max(t.journal.c.seq)).where(
                t.journal.c.database_id == mailbox.database_id)) or 0)
