"""Folder permission entries and the delegates of a mailbox.

A folder's entries name a mailbox, or "Default" (everyone else) / "Anonymous"; a folder without a
"Default" entry gives everyone else the built-in default (see ``access.permissions``). Adding a
delegate writes entries on the owner's default folders in the same transaction, removing one
takes them away."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, select, update

from mailroom.access.permissions import DEFAULT_RIGHTS, Permission, Principal, Right

from . import tables as t
from .directory import Directory, _mailbox, _mailbox_query
from .engine import Writer, reading, writing
from .errors import AlreadyExists, NotFound
from .model import Mailbox, utcnow

if TYPE_CHECKING:
    from .folders import Folders

DELIVER_MEETING_REQUESTS = "DelegatesAndSendInformationToMe"  # Exchange's default for a mailbox


def is_calendar(folder_class: str | None) -> bool:
    return (folder_class or "").startswith("IPF.Appointment")


def load(conn: Connection, folder_id: int) -> list[Permission]:
    p = t.folder_permissions.c
    rows = conn.execute(select(p.user_id, p.distinguished_user, p.rights)
                        .where(p.folder_id == folder_id).order_by(p.id)).all()
    return [Permission(Principal(r[0], r[1]), Right(r[2])) for r in rows]


def replace(conn: Connection, folder_id: int, entries: list[Permission]) -> None:
    """Make ``entries`` the folder's whole permission set."""
    conn.execute(delete(t.folder_permissions).where(t.folder_permissions.c.folder_id == folder_id))
    for entry in entries:
        _insert(conn, folder_id, entry.principal, entry.rights)


def _insert(conn: Connection, folder_id: int, principal: Principal, rights: Right) -> None:
    conn.execute(insert(t.folder_permissions).values(
        folder_id=folder_id, user_id=principal.mailbox_id, distinguished_user=principal.distinguished,
        rights=rights.value))


def set_for_user(conn: Connection, folder_id: int, user_id: int, rights: Right | None) -> None:
    """Give ``user_id`` these rights on the folder (None, or no rights: remove its entry)."""
    p = t.folder_permissions.c
    conn.execute(delete(t.folder_permissions).where(p.folder_id == folder_id, p.user_id == user_id))
    if rights:
        _insert(conn, folder_id, Principal(user_id), rights)


def rights_of(conn: Connection, folder_id: int, user_id: int) -> Right:
    """What ``user_id`` may do with the folder's items: its own entry, else the Default entry, else
    nothing (the built-in calendar default shows free/busy times only, which no item access needs)."""
    p = t.folder_permissions.c
    rows = conn.execute(select(p.user_id, p.distinguished_user, p.rights).where(
        p.folder_id == folder_id, (p.user_id == user_id) | (p.distinguished_user == "Default"))).all()
    own = next((r[2] for r in rows if r[0] == user_id), None)
    default = next((r[2] for r in rows if r[1] == "Default"), None)
    if own is not None:
        return Right(own)
    return Right(default) if default is not None else DEFAULT_RIGHTS


def _deliver_setting(conn: Connection, owner: Mailbox) -> str:
    found = conn.scalar(select(t.delegate_settings.c.deliver_meeting_requests)
                        .where(t.delegate_settings.c.mailbox_id == owner.id))
    return found or DELIVER_MEETING_REQUESTS


def visible_to(user_id: int) -> ColumnElement[bool]:
    """SQL for "the folder is visible to ``user_id``", decided as ``rights_of`` decides (its own
    entry, else the Default entry, else nothing)."""
    p = t.folder_permissions.c
    own = select(p.rights).where(p.folder_id == t.folders.c.id, p.user_id == user_id).limit(1).scalar_subquery()
    default = select(p.rights).where(p.folder_id == t.folders.c.id,
                                     p.distinguished_user == "Default").limit(1).scalar_subquery()
    rights = func.coalesce(own, default, DEFAULT_RIGHTS.value)
    return rights.op("&")(Right.FOLDER_VISIBLE.value) != 0


@dataclass(frozen=True, slots=True)
class Delegate:
    """A delegate of a mailbox and the rights it holds on each of the owner's delegate folders
    (by distinguished folder name)."""

    mailbox: Mailbox
    receive_copies: bool
    view_private: bool
    folders: dict[str, Right]


class Permissions:
    def __init__(self, engine: Engine, folders: Folders, directory: Directory) -> None:
        self.engine = engine
        self.folders = folders
        self._meeting_copies = directory.flow_cache("meeting_copies")  # by owner id; delegate changes drop it

    def rights(self, folder_id: int, user: Mailbox) -> Right:
        with reading(self.engine) as conn:
            return rights_of(conn, folder_id, user.id)

    # -- delegates ---------------------------------------------------------------------------
    @contextmanager
    def _changing(self, owner: Mailbox, database_id: int | None = None) -> Iterator[Writer]:
        """A transaction changing the owner's delegates or their settings: its cached meeting
        copies are dropped once it ends."""
        try:
            with writing(self.engine, database_id) as w:
                yield w
        finally:
            self._meeting_copies.forget(owner.id)

    def delegates(self, owner: Mailbox, folders: dict[str, int]) -> list[Delegate]:
        """The owner's delegates with their rights on ``folders`` (distinguished name -> folder id)."""
        d, p = t.delegates.c, t.folder_permissions.c
        with reading(self.engine) as conn:
            rows = conn.execute(_mailbox_query().add_columns(d.receive_copies, d.view_private)
                                .join(t.delegates, d.delegate_id == t.mailboxes.c.id)
                                .where(d.owner_id == owner.id).order_by(d.created, d.delegate_id)).all()
            ids = [r[0] for r in rows]
            entries = conn.execute(select(p.folder_id, p.user_id, p.rights).where(
                p.folder_id.in_(list(folders.values())), p.user_id.in_(ids))).all() if ids else []
        by_folder = {folder_id: name for name, folder_id in folders.items()}
        found = []
        for row in rows:
            mine = {by_folder[f]: Right(r) for f, u, r in entries if u == row[0]}
            found.append(Delegate(_mailbox(row), row.receive_copies, row.view_private,
                                  {name: mine.get(name, Right.NONE) for name in folders}))
        return found

    def add_delegate(self, owner: Mailbox, delegate: Mailbox, folders: dict[int, Right],
                     receive_copies: bool, view_private: bool) -> None:
        """Make ``delegate`` a delegate of ``owner`` with these rights (folder id -> rights)."""
        with self._changing(owner, owner.database_id) as w:
            if self._is_delegate(w.conn, owner, delegate):
                raise AlreadyExists(f"{delegate.address} is already a delegate of {owner.address}")
            w.conn.execute(insert(t.delegates).values(owner_id=owner.id, delegate_id=delegate.id,
                                                      receive_copies=receive_copies, view_private=view_private,
                                                      created=utcnow()))
            self._set_folders(w, owner, delegate, folders)

    def update_delegate(self, owner: Mailbox, delegate: Mailbox, folders: dict[int, Right],
                        receive_copies: bool | None, view_private: bool | None) -> None:
        """Change what the request names; folders not in ``folders`` keep their entries."""
        with self._changing(owner, owner.database_id) as w:
            if not self._is_delegate(w.conn, owner, delegate):
                raise NotFound(f"{delegate.address} is not a delegate of {owner.address}")
            values = {k: v for k, v in (("receive_copies", receive_copies), ("view_private", view_private))
                      if v is not None}
            if values:
                d = t.delegates.c
                w.conn.execute(update(t.delegates).where(d.owner_id == owner.id, d.delegate_id == delegate.id)
                               .values(**values))
            self._set_folders(w, owner, delegate, folders)

    def remove_delegate(self, owner: Mailbox, delegate: Mailbox, folder_ids: list[int]) -> None:
        """Remove the delegate and its entries on the owner's delegate folders."""
        with self._changing(owner, owner.database_id) as w:
            if not self._is_delegate(w.conn, owner, delegate):
                raise NotFound(f"{delegate.address} is not a delegate of {owner.address}")
            d = t.delegates.c
            w.conn.execute(delete(t.delegates).where(d.owner_id == owner.id, d.delegate_id == delegate.id))
            self._set_folders(w, owner, delegate, dict.fromkeys(folder_ids, Right.NONE))

    def meeting_copies(self, owner: Mailbox) -> tuple[str, tuple[Mailbox, ...]]:
        """The owner's DeliverMeetingRequests and the delegates that receive copies of its
        meeting messages (ReceiveCopiesOfMeetingMessages); asked at every meeting message
        delivered, so cached as the directory's mail-flow answers are (store/cache.py)."""
        found = self._meeting_copies.get(owner.id, lambda: self._load_meeting_copies(owner))
        assert found is not None  # the load always answers
        return found

    def _load_meeting_copies(self, owner: Mailbox) -> tuple[str, tuple[Mailbox, ...]]:
        d = t.delegates.c
        with reading(self.engine) as conn:
            rows = conn.execute(_mailbox_query().join(t.delegates, d.delegate_id == t.mailboxes.c.id)
                                .where(d.owner_id == owner.id, d.receive_copies.is_(True))
                                .order_by(d.created, d.delegate_id)).all()
            return _deliver_setting(conn, owner), tuple(_mailbox(r) for r in rows)

    def sees_private(self, owner: Mailbox, user: Mailbox) -> bool:
        """Whether ``user`` is a delegate of ``owner`` allowed to see its private items."""
        d = t.delegates.c
        with reading(self.engine) as conn:
            return bool(conn.scalar(select(d.view_private).where(d.owner_id == owner.id, d.delegate_id == user.id)))

    def is_delegate(self, owner: Mailbox, delegate: Mailbox) -> bool:
        with reading(self.engine) as conn:
            return self._is_delegate(conn, owner, delegate)

    def _is_delegate(self, conn: Connection, owner: Mailbox, delegate: Mailbox) -> bool:
        d = t.delegates.c
        return conn.scalar(select(d.owner_id).where(d.owner_id == owner.id, d.delegate_id == delegate.id)) is not None

    def _set_folders(self, w: Writer, owner: Mailbox, delegate: Mailbox, folders: dict[int, Right]) -> None:
        for folder_id, rights in folders.items():
            set_for_user(w.conn, folder_id, delegate.id, rights)
            parent = w.conn.scalar(select(t.folders.c.parent_id).where(t.folders.c.id == folder_id))
            self.folders._touch(w, owner, folder_id, "modified", parent)

    def deliver_meeting_requests(self, owner: Mailbox) -> str:
        with reading(self.engine) as conn:
            return _deliver_setting(conn, owner)

    def set_deliver_meeting_requests(self, owner: Mailbox, value: str) -> None:
        with self._changing(owner) as w:
            w.replace_row(t.delegate_settings, owner.id, deliver_meeting_requests=value)
