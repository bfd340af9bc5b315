"""Folders of a mailbox: the hierarchy, counts and folder changes, each journaled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, select, update

from mailroom.access.permissions import Permission

from . import extended, permissions
from . import tables as t
from .engine import Prepared, Writer, reading, writing
from .errors import AlreadyExists, Conflict, InvalidOperation, NotFound
from .model import ExtendedValue, Folder, Mailbox, utcnow
from .query import Filter, Page, Sort
from .sqlquery import FOLDERS


def folder_from_row(row: Row) -> Folder:
    m = row._mapping
    return Folder(
        id=m["id"], mailbox_id=m["mailbox_id"], parent_id=m["parent_id"], distinguished_id=m["distinguished_id"],
        display_name=m["display_name"], folder_class=m["folder_class"], change_number=m["change_number"],
        created=m["created"], modified=m["modified"], total_count=m["total_count"],
        associated_count=m["associated_count"], unread_count=m["unread_count"],
        child_folder_count=m["child_folder_count"], hidden=m["hidden"],
    )


# Built once, with its values as parameters: SQLAlchemy then reuses its compiled form as is.
_ADJUST_COUNTS = Prepared(update(t.folders).where(t.folders.c.id == bindparam("folder")).values(
    total_count=t.folders.c.total_count + bindparam("d_total"),
    unread_count=t.folders.c.unread_count + bindparam("d_unread"),
    associated_count=t.folders.c.associated_count + bindparam("d_associated")))


def adjust_counts(conn: Connection, folder_id: int, total: int = 0, unread: int = 0, associated: int = 0) -> None:
    if total or unread or associated:
        _ADJUST_COUNTS.run(conn, folder=folder_id, d_total=total, d_unread=unread, d_associated=associated)


def adjust_counts_many(conn: Connection, counts: dict[int, list[int]]) -> None:
    """``adjust_counts`` for several folders with one statement: folder -> [total, unread, associated]."""
    changes = [{"folder": folder_id, "d_total": total, "d_unread": unread, "d_associated": associated}
               for folder_id, (total, unread, associated) in counts.items() if total or unread or associated]
    if changes:
        _ADJUST_COUNTS.run_many(conn, changes)


class Folders:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading -----------------------------------------------------------------------------
    def get(self, mailbox: Mailbox, folder_id: int, with_extended: bool = True) -> Folder:
        with reading(self.engine) as conn:
            return self._get(conn, mailbox, folder_id, with_extended)

    def _get(self, conn: Connection, mailbox: Mailbox, folder_id: int, with_extended: bool = True) -> Folder:
        row = conn.execute(select(t.folders).where(t.folders.c.id == folder_id,
                                                   t.folders.c.mailbox_id == mailbox.id)).first()
        if row is None:
            raise NotFound(f"folder {folder_id}")
        folder = folder_from_row(row)
        if with_extended:
            folder.extended = extended.load(conn, "folder", [folder.id])[folder.id]
        return folder

    def permissions(self, mailbox: Mailbox, folder_id: int) -> list[Permission]:
        """The folder's permission entries as stored (the defaults are not stored)."""
        with reading(self.engine) as conn:
            self._get(conn, mailbox, folder_id, with_extended=False)
            return permissions.load(conn, folder_id)

    def distinguished(self, mailbox: Mailbox, name: str) -> Folder:
        with reading(self.engine) as conn:
            found = conn.scalar(select(t.folders.c.id).where(t.folders.c.mailbox_id == mailbox.id,
                                                             t.folders.c.distinguished_id == name))
            if found is None:
                raise NotFound(f"distinguished folder {name}")
            return self._get(conn, mailbox, found)

    def distinguished_ids(self, mailbox: Mailbox) -> dict[str, int]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(t.folders.c.distinguished_id, t.folders.c.id).where(
                t.folders.c.mailbox_id == mailbox.id, t.folders.c.distinguished_id.is_not(None))).all()
        return {name: folder_id for name, folder_id in rows}

    def find(self, mailbox: Mailbox, parent_id: int, deep: bool, where: Filter | None = None,
             sort: list[Sort] | None = None, page: Page | Callable[[int], Page] | None = None,
             extended_keys: bool = False, visible_to: int | None = None) -> tuple[list[Folder], int]:
        """Child folders of ``parent_id`` (all descendants when ``deep``), filtered and paged;
        returns the page and the number of folders in the whole view. ``page`` may be a
        function of that number. ``visible_to`` (a mailbox id) keeps only the folders its folder
        permissions let that mailbox see, in the total too."""
        with reading(self.engine) as conn:
            self._get(conn, mailbox, parent_id, with_extended=False)
            scope = self._subtree(conn, mailbox, parent_id) if deep else None
            f = t.folders.c
            cond = [f.mailbox_id == mailbox.id, FOLDERS.where(where)]
            cond.append(f.id.in_(scope) if scope is not None else f.parent_id == parent_id)
            if visible_to is not None:
                cond.append(permissions.visible_to(visible_to))
            total = conn.scalar(select(func.count()).select_from(t.folders).where(*cond)) or 0
            page = page(total) if callable(page) else page or Page()
            query = select(t.folders).where(*cond).order_by(*FOLDERS.order_by(sort or []), f.display_name, f.id)
            tree_order = deep and not sort  # pages must slice the depth-first listing, so order before paging
            if not tree_order:
                query = query.offset(page.offset)
                if page.limit is not None:
                    query = query.limit(page.limit)
            found = [folder_from_row(r) for r in conn.execute(query)]
            if tree_order:
                end = None if page.limit is None else page.offset + page.limit
                found = _depth_first(found, parent_id)[page.offset:end]
            if extended_keys:
                by_id = extended.load(conn, "folder", [x.id for x in found])
                for folder in found:
                    folder.extended = by_id[folder.id]
        return found, total

    def _subtree(self, conn: Connection, mailbox: Mailbox, parent_id: int) -> list[int]:
        rows = conn.execute(select(t.folders.c.id, t.folders.c.parent_id)
                            .where(t.folders.c.mailbox_id == mailbox.id)).all()
        children: dict[int, list[int]] = {}
        for folder_id, parent in rows:
            children.setdefault(parent, []).append(folder_id)
        found: list[int] = []
        stack = list(children.get(parent_id, []))
        while stack:
            folder_id = stack.pop()
            found.append(folder_id)
            stack.extend(children.get(folder_id, []))
        return found

    # -- writing -----------------------------------------------------------------------------
    def create(self, mailbox: Mailbox, parent_id: int, display_name: str, folder_class: str | None,
               ext: list[ExtendedValue] | None = None, perms: list[Permission] | None = None) -> Folder:
        with writing(self.engine, mailbox.database_id) as w:
            self._get(w.conn, mailbox, parent_id, with_extended=False)
            self._check_name_free(w.conn, parent_id, display_name)
            now = utcnow()
            folder_id = w.conn.execute(insert(t.folders).values(
                mailbox_id=mailbox.id, parent_id=parent_id, display_name=display_name, folder_class=folder_class,
                change_number=0, created=now, modified=now, total_count=0, associated_count=0, unread_count=0,
                child_folder_count=0, hidden=False)).inserted_primary_key[0]
            extended.save(w.conn, "folder", folder_id, ext or [])
            permissions.replace(w.conn, folder_id, perms or [])
            self._bump_children(w.conn, parent_id, +1)
            self._touch(w, mailbox, folder_id, "created", parent_id)
            return self._get(w.conn, mailbox, folder_id)

    def _check_name_free(self, conn: Connection, parent_id: int, name: str, except_id: int | None = None) -> None:
        f = t.folders.c
        query = select(f.id).where(f.parent_id == parent_id, func.lower(f.display_name) == name.lower())
        if except_id is not None:
            query = query.where(f.id != except_id)
        if conn.scalar(query) is not None:
            raise AlreadyExists(f"a folder named {name!r} already exists there")

    def _bump_children(self, conn: Connection, folder_id: int | None, delta: int) -> None:
        if folder_id is not None:
            f = t.folders.c
            conn.execute(update(t.folders).where(f.id == folder_id)
                         .values(child_folder_count=f.child_folder_count + delta))

    def _touch(self, w: Writer, mailbox: Mailbox, folder_id: int, action: str, parent_id: int | None,
               old_parent: int | None = None, old_id: int | None = None) -> int:
        seq = w.journal(mailbox.database_id, mailbox.id, "folder", folder_id, action, parent_id, old_parent, old_id)
        if action != "deleted":
            w.conn.execute(update(t.folders).where(t.folders.c.id == folder_id)
                           .values(change_number=seq, modified=utcnow()))
        return seq

    def update(self, mailbox: Mailbox, folder_id: int, values: dict[str, Any],
               set_ext: list[ExtendedValue] | None = None, delete_ext: list[str] | None = None,
               expected_change: int | None = None, perms: list[Permission] | None = None) -> Folder:
        """Change ``display_name`` / ``folder_class``, extended properties and (``perms`` not None)
        replace the permission set."""
        with writing(self.engine, mailbox.database_id) as w:
            folder = self._get(w.conn, mailbox, folder_id, with_extended=False)
            if expected_change is not None and expected_change != folder.change_number:
                raise Conflict(f"folder {folder_id} changed since change {expected_change}")
            if "display_name" in values and folder.parent_id is not None:
                self._check_name_free(w.conn, folder.parent_id, values["display_name"], except_id=folder_id)
            allowed = {k: v for k, v in values.items() if k in ("display_name", "folder_class")}
            if allowed:
                w.conn.execute(update(t.folders).where(t.folders.c.id == folder_id).values(**allowed))
            extended.save(w.conn, "folder", folder_id, set_ext or [])
            extended.remove(w.conn, "folder", folder_id, delete_ext or [])
            if perms is not None:
                permissions.replace(w.conn, folder_id, perms)
            self._touch(w, mailbox, folder_id, "modified", folder.parent_id)
            return self._get(w.conn, mailbox, folder_id)

    def move(self, mailbox: Mailbox, folder_id: int, to_parent: int) -> Folder:
        with writing(self.engine, mailbox.database_id) as w:
            folder = self._get(w.conn, mailbox, folder_id, with_extended=False)
            if folder.distinguished_id:
                raise InvalidOperation("a distinguished folder cannot be moved")
            self._get(w.conn, mailbox, to_parent, with_extended=False)
            if to_parent == folder_id or to_parent in self._subtree(w.conn, mailbox, folder_id):
                raise InvalidOperation("a folder cannot be moved into itself")
            self._check_name_free(w.conn, to_parent, folder.display_name, except_id=folder_id)
            w.conn.execute(update(t.folders).where(t.folders.c.id == folder_id).values(parent_id=to_parent))
            self._bump_children(w.conn, folder.parent_id, -1)
            self._bump_children(w.conn, to_parent, +1)
            self._touch(w, mailbox, folder_id, "moved", to_parent, old_parent=folder.parent_id)
            return self._get(w.conn, mailbox, folder_id)

    def copy(self, mailbox: Mailbox, folder_id: int, to_parent: int, copy_items: Any) -> Folder:
        """Copy the folder and its subtree under ``to_parent``; ``copy_items(w, mailbox, src, dst)``
        copies the items of one folder (supplied by the item store)."""
        with writing(self.engine, mailbox.database_id) as w:
            source = self._get(w.conn, mailbox, folder_id, with_extended=False)
            self._get(w.conn, mailbox, to_parent, with_extended=False)
            if to_parent == folder_id or to_parent in self._subtree(w.conn, mailbox, folder_id):
                raise InvalidOperation("a folder cannot be copied into itself")
            self._check_name_free(w.conn, to_parent, source.display_name)
            new_id = self._copy_tree(w, mailbox, source, to_parent, copy_items)
            return self._get(w.conn, mailbox, new_id)

    def _copy_tree(self, w: Writer, mailbox: Mailbox, source: Folder, to_parent: int, copy_items: Any) -> int:
        now = utcnow()
        new_id = w.conn.execute(insert(t.folders).values(
            mailbox_id=mailbox.id, parent_id=to_parent, display_name=source.display_name,
            folder_class=source.folder_class, change_number=0, created=now, modified=now, total_count=0,
            associated_count=0, unread_count=0, child_folder_count=0, hidden=False)).inserted_primary_key[0]
        extended.copy(w.conn, "folder", source.id, new_id)
        self._bump_children(w.conn, to_parent, +1)
        self._touch(w, mailbox, new_id, "copied", to_parent, old_parent=source.parent_id, old_id=source.id)
        copy_items(w, mailbox, source.id, new_id)
        children = w.conn.execute(select(t.folders).where(t.folders.c.parent_id == source.id)).all()
        for row in children:
            self._copy_tree(w, mailbox, folder_from_row(row), new_id, copy_items)
        return new_id

    def delete(self, mailbox: Mailbox, folder_id: int, hard: bool, trash_id: int | None) -> None:
        """Delete the folder and everything under it; with ``hard`` False, move it under
        ``trash_id`` instead (Deleted Items), unless it already is somewhere in there."""
        with writing(self.engine, mailbox.database_id) as w:
            folder = self._get(w.conn, mailbox, folder_id, with_extended=False)
            if folder.distinguished_id:
                raise InvalidOperation("distinguished folders cannot be deleted")
            if not hard and trash_id is not None and folder_id not in self._subtree(w.conn, mailbox, trash_id):
                w.conn.execute(update(t.folders).where(t.folders.c.id == folder_id).values(parent_id=trash_id))
                self._bump_children(w.conn, folder.parent_id, -1)
                self._bump_children(w.conn, trash_id, +1)
                self._touch(w, mailbox, folder_id, "moved", trash_id, old_parent=folder.parent_id)
                return
            self._remove_tree(w, mailbox, folder_id)
            self._bump_children(w.conn, folder.parent_id, -1)

    def delete_subfolders(self, w: Writer, mailbox: Mailbox, folder_id: int) -> None:
        """Hard-delete the subfolders of ``folder_id`` with everything under them (EmptyFolder with
        DeleteSubFolders); distinguished subfolders are never deleted and stay as they are."""
        f = t.folders.c
        children = list(w.conn.scalars(select(f.id).where(f.parent_id == folder_id, f.distinguished_id.is_(None))))
        for child in children:
            self._remove_tree(w, mailbox, child)
        self._bump_children(w.conn, folder_id, -len(children))

    def _remove_tree(self, w: Writer, mailbox: Mailbox, folder_id: int) -> None:
        """Hard-delete the folder and its subtree; each deletion is journaled with the parent it
        was in (as an item's is), which a DeletedEvent names."""
        tree = [folder_id, *self._subtree(w.conn, mailbox, folder_id)]
        parents = dict(w.conn.execute(select(t.folders.c.id, t.folders.c.parent_id)
                                      .where(t.folders.c.id.in_(tree))).tuples().all())
        for sub in reversed(tree):
            w.conn.execute(delete(t.items).where(t.items.c.folder_id == sub))
            w.conn.execute(delete(t.folders).where(t.folders.c.id == sub))
            w.journal(mailbox.database_id, mailbox.id, "folder", sub, "deleted", parents.get(sub))


def _depth_first(found: list[Folder], root_id: int) -> list[Folder]:
    """Order a deep traversal parent-before-children, siblings by name, as Exchange lists them."""
    children: dict[int | None, list[Folder]] = {}
    for folder in found:
        children.setdefault(folder.parent_id, []).append(folder)
    ordered: list[Folder] = []

    def walk(parent: int) -> None:
        for child in children.get(parent, []):
            ordered.append(child)
            walk(child.id)

    walk(root_id)
    seen = {f.id for f in ordered}
    return ordered + [f for f in found if f.id not in seen]
