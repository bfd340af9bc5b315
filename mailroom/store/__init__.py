"""The mailbox store: directory, folders, items, attachments, extended properties and the change
journal, behind one small interface with two back ends (SQLite by default, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from . import migrate
from .audit import AuditLog
from .calendar_processing import CalendarProcessingSettings
from .directory import Directory
from .engine import make_engine, sqlite_url
from .folders import Folders
from .groups import Groups
from .items import Items
from .journal import Journal
from .permissions import Permissions
from .throttling import ThrottlingPolicies
from .working_hours import WorkingHoursSettings


class Store:
    """Everything the protocol roles need from storage. Methods are synchronous and each runs in
    its own transaction; servers call them from worker threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.directory = Directory(engine)
        self.groups = Groups(engine, self.directory)
        self.folders = Folders(engine)
        self.items = Items(engine, self.folders)
        self.journal = Journal(engine)
        self.permissions = Permissions(engine, self.folders, self.directory)
        self.audit = AuditLog(engine)
        self.throttling = ThrottlingPolicies(engine, self.directory)
        self.calendar_processing = CalendarProcessingSettings(engine, self.directory)
        self.working_hours = WorkingHoursSettings(engine, self.directory)

    @classmethod
    def open(cls, url: str, pool_size: int = 8) -> Store:
        """Open (and create or upgrade) the store at ``url``."""
        engine = make_engine(url, pool_size)
        migrate.upgrade(engine)
        return cls(engine)

    @classmethod
    def open_data_dir(cls, data_dir: Path) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        return cls.open(sqlite_url(data_dir))

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()
