"""The audit log: who reached whose mailbox, by what right, doing what, with what result."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Engine, insert, select

from . import tables as t
from .engine import reading, writing
from .model import AuditRecord


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(self, records: list[AuditRecord]) -> None:
        """Write ``records`` in one short transaction of their own."""
        if records:
            with writing(self.engine) as w:
                w.conn.execute(insert(t.audit_log), [asdict(r) for r in records])

    def search(self, mailbox: str, caller: str | None = None, start: str | None = None, end: str | None = None,
               right: str | None = None, limit: int = 100) -> list[AuditRecord]:
        """Accesses to ``mailbox`` (newest first), filtered; ``start``/``end`` are ISO UTC texts
        (``end`` exclusive)."""
        a = t.audit_log.c
        query = select(*[c for c in t.audit_log.c if c.key != "id"]).where(a.mailbox == mailbox.strip().lower())
        if caller:
            query = query.where(a.caller == caller.strip().lower())
        if start:
            query = query.where(a.time >= start)
        if end:
            query = query.where(a.time < end)
        if right:
            query = query.where(a.right == right)
        with reading(self.engine) as conn:
            rows = conn.execute(query.order_by(a.time.desc(), a.id.desc()).limit(limit)).all()
        return [AuditRecord(**r._mapping) for r in rows]
