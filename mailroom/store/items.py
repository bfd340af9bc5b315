"""Items of a mailbox: create, read, find, update, move, copy, delete; attachments and MIME.

Every change updates the folder counters and appends a journal row in the same transaction;
the journal's sequence number becomes the item's change number (its ChangeKey).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Row, bindparam, delete, exists, func, insert, select, update

from . import extended
from . import tables as t
from .engine import Change, DriverReads, Prepared, Writer, reading, writing
from .errors import Conflict, NotFound
from .folders import Folders, adjust_counts, adjust_counts_many
from .model import Attachment, Body, Delivery, ExtendedValue, Item, ItemChanges, Mailbox, NewItem, utcnow
from .query import Filter, Page, Prop, Sort
from .sqlquery import ITEM_COLUMNS, ITEMS, NOT_PRIVATE, PRIVATE

# Item properties kept in their own columns (see tables.items); everything else lives in props.
_COLUMN_OF_PROP = {name: col.key for name, col in ITEM_COLUMNS.items()}
_PROP_OF_COLUMN = {v: k for k, v in _COLUMN_OF_PROP.items()}
_SERVER_PROPS = frozenset({"DateTimeCreated", "LastModifiedTime", "Size", "HasAttachments"})
_LIST_COLUMNS = [c for c in t.items.c if c.key not in ("body",)]
NEWEST_FIRST = Sort(Prop("DateTimeReceived", "datetime"), descending=True)  # a folder's default view order


def _split_props(props: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    columns: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for name, value in props.items():
        if name in _COLUMN_OF_PROP:
            columns[_COLUMN_OF_PROP[name]] = value
        else:
            rest[name] = value
    return columns, rest


def _item_from(m: Mapping[str, Any]) -> Item:
    props = dict(m["props"] or {})
    for column, name in _PROP_OF_COLUMN.items():
        value = m[column]
        if value is not None:
            props[name] = value
    body = Body(m["body_type"], m["body"]) if "body" in m and m["body_type"] else None
    return Item(id=m["id"], mailbox_id=m["mailbox_id"], folder_id=m["folder_id"], change_number=m["change_number"],
                props=props, body=body, created_by=m["created_by"])


def _insert_items(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """The rows in one statement; their ids, in order. A column one row sets and another does not
    is NULL in the other, as it is when left out: every column with a default other than NULL is
    set on each row (``_insert_many``)."""
    if not rows:
        return []
    keys = set().union(*rows)
    return [int(found["id"]) for found in _INSERT_ITEMS.inserted(conn, [{k: row.get(k) for k in keys} for row in rows])]


def _size(props: dict[str, Any], body: Body | None, mime: bytes | None, attachments: Iterable[Attachment]) -> int:
    if mime:
        return len(mime)
    size = len(json.dumps(props, default=str)) + (len(body.text.encode()) if body else 0)
    return size + sum(a.size or len(a.content) for a in attachments)


# Built once: SQLAlchemy then reuses their compiled form without recomputing cache keys.
_ANY_ATTACHMENT = exists().where(t.attachments.c.item_id == t.items.c.id).label("any_attachment")
_BY_IDS = (t.items.c.id.in_(bindparam("ids", expanding=True)), t.items.c.mailbox_id == bindparam("mailbox"))
_BY_ID = (t.items.c.id == bindparam("id"), t.items.c.mailbox_id == bindparam("mailbox"))
# with body -> statement
_GET = {True: select(*t.items.c, _ANY_ATTACHMENT).where(*_BY_IDS),
        False: select(*_LIST_COLUMNS, _ANY_ATTACHMENT).where(*_BY_IDS)}
# One item (GetItem reads one id at a time): run on the driver, see ``Prepared``.
_GET_ONE = {True: Prepared(select(*t.items.c, _ANY_ATTACHMENT).where(*_BY_ID)),
            False: Prepared(select(*_LIST_COLUMNS, _ANY_ATTACHMENT).where(*_BY_ID))}
_EXTENDED_OF = Prepared(select(t.extended_properties.c.prop_key, t.extended_properties.c.prop_type,
                               t.extended_properties.c.value)
                        .where(t.extended_properties.c.item_id == bindparam("id")).order_by(t.extended_properties.c.id))
_MIME_OF = Prepared(select(t.item_mime.c.mime).where(t.item_mime.c.item_id == bindparam("id")))
_ATTACHMENTS_OF = Prepared(select(*[c for c in t.attachments.c if c.key != "content"])
                           .where(t.attachments.c.item_id == bindparam("id")).order_by(t.attachments.c.id))


# A delivery's reads: on the driver (``Prepared``).
_TARGETS = Prepared(select(t.folders.c.mailbox_id, t.folders.c.distinguished_id, t.folders.c.id).where(
    t.folders.c.mailbox_id.in_(bindparam("mailboxes", expanding=True)),
    t.folders.c.distinguished_id.in_(bindparam("folders", expanding=True))))
_HELD = Prepared(select(t.items.c.mailbox_id, t.items.c.message_id, t.items.c.props).where(
    t.items.c.mailbox_id.in_(bindparam("mailboxes", expanding=True)),
    t.items.c.message_id.in_(bindparam("message_ids", expanding=True))))
_DELIVERY_KEY = "_DeliveryKey"  # the stored Delivery.key of a delivered item (internal: no EWS property)
_INSERT_MIME = Prepared(insert(t.item_mime))
# Several rows in one statement (see ``Prepared.inserted``), their ids returned in the rows' order.
_INSERT_ITEMS = Prepared(insert(t.items).returning(t.items.c.id, sort_by_parameter_order=True))
DELIVERED, DUPLICATE, GONE = "delivered", "duplicate", "gone"


def _attachment_from(m: Mapping[str, Any]) -> Attachment:
    return Attachment(
        kind=m["kind"], name=m["name"], content_type=m["content_type"], content_id=m["content_id"],
        content_location=m["content_location"], is_inline=m["is_inline"], is_contact_photo=m["is_contact_photo"],
        content=bytes(m["content"]) if "content" in m else b"", id=m["id"], item_id=m["item_id"], size=m["size"],
        last_modified=m["last_modified"])


class Items:
    def __init__(self, engine: Engine, folders: Folders) -> None:
        self.engine = engine
        self.folders = folders
        self._driver = DriverReads(engine)

    # -- reading -----------------------------------------------------------------------------
    def get(self, mailbox: Mailbox, item_id: int, body: bool = True, mime: bool = False,
            attachments: bool = True, with_extended: bool = True) -> Item:
        found = self.get_many(mailbox, [item_id], body=body, mime=mime, attachments=attachments,
                              with_extended=with_extended)[0]
        if found is None:
            raise NotFound(f"item {item_id}")
        return found

    def get_many(self, mailbox: Mailbox, item_ids: list[int], body: bool = True, mime: bool = False,
                 attachments: bool = True, with_extended: bool = True) -> list[Item | None]:
        """The items in the order asked, None where an id is not an item of this mailbox."""
        if len(item_ids) == 1:
            return [self._get_one(mailbox, item_ids[0], body, mime, attachments, with_extended)]
        with reading(self.engine) as conn:
            return self._get_many(conn, mailbox, item_ids, body, mime, attachments, with_extended)

    def _get_one(self, mailbox: Mailbox, item_id: int, body: bool, mime: bool, attachments: bool,
                 with_extended: bool) -> Item | None:
        """``get_many`` of one id, the hot read path: straight on the driver, same result. The item
        row alone is one statement, needing no transaction of its own; when there is more to read
        (extended properties, MIME, attachments) the row and the rest are read in one transaction."""
        dialect = self.engine.dialect
        if not (with_extended or mime):
            with self._driver.cursor(transaction=False) as cursor:
                rows = _GET_ONE[body].rows(cursor, dialect, id=item_id, mailbox=mailbox.id)
            if not rows:
                return None
            if not (attachments and rows[0]["any_attachment"]):
                return _item_from(rows[0])
        with self._driver.cursor() as cursor:
            rows = _GET_ONE[body].rows(cursor, dialect, id=item_id, mailbox=mailbox.id)
            return self._details(cursor, dialect, rows[0], item_id, mime, attachments, with_extended) if rows else None

    @staticmethod
    def _details(cursor: Any, dialect: Dialect, row: dict[str, Any], item_id: int, mime: bool, attachments: bool,
                 with_extended: bool) -> Item:
        """The item of ``row`` with what else was asked for, read on the same cursor."""
        item = _item_from(row)
        if with_extended:
            item.extended = [ExtendedValue(m["prop_key"], m["prop_type"], m["value"])
                             for m in _EXTENDED_OF.rows(cursor, dialect, id=item_id)]
        if mime:
            item.mime = next((bytes(m["mime"]) for m in _MIME_OF.rows(cursor, dialect, id=item_id)), None)
        if attachments and row["any_attachment"]:
            item.attachments = [_attachment_from(m) for m in _ATTACHMENTS_OF.rows(cursor, dialect, id=item_id)]
        return item

    def _get_many(self, conn: Connection, mailbox: Mailbox, item_ids: list[int], body: bool, mime: bool,
                  attachments: bool, with_extended: bool) -> list[Item | None]:
        rows = conn.execute(_GET[body], {"ids": item_ids, "mailbox": mailbox.id}).all()
        by_id = {r.id: _item_from(r._mapping) for r in rows}
        with_attachments = [by_id[r.id] for r in rows if r.any_attachment] if attachments else []
        self._load_details(conn, list(by_id.values()), mime, False, with_extended)
        self._load_details(conn, with_attachments, False, True, False)
        return [by_id.get(i) for i in item_ids]

    def _fresh(self, conn: Connection, mailbox: Mailbox, item_id: int, body: bool = True) -> Item:
        """The item as this transaction now sees it (after a change), for the caller's answer."""
        item = self._get_many(conn, mailbox, [item_id], body, False, True, body)[0]
        if item is None:
            raise NotFound(f"item {item_id}")
        return item

    def _load_details(self, conn: Connection, found: list[Item], mime: bool, attachments: bool,
                      with_extended: bool) -> None:
        ids = [i.id for i in found]
        if not ids:
            return
        if with_extended:
            ext = extended.load(conn, "item", ids)
            for item in found:
                item.extended = ext[item.id]
        if mime:
            by_id = {i.id: i for i in found}
            for item_id, blob in conn.execute(select(t.item_mime).where(t.item_mime.c.item_id.in_(ids))):
                by_id[item_id].mime = bytes(blob)
        if attachments:
            by_item = self._attachments(conn, ids, with_content=False)
            for item in found:
                item.attachments = by_item.get(item.id, [])

    def find(self, mailbox: Mailbox, folder_id: int, where: Filter | None = None, sort: list[Sort] | None = None,
             page: Page | Callable[[int], Page] | None = None, associated: bool = False,
             with_extended: bool = False, with_attachments: bool = False,
             hide_private: bool = False) -> tuple[list[Item], int]:
        """One page of the folder's items (no bodies) and the number of items in the whole view.
        ``page`` may be a function of that number (paging from the end, fractional paging).
        Uses the folder's counters when there is no filter, so the cost follows the page size;
        ``hide_private`` leaves private items out of the view (its total too), counting them from
        their own index."""
        with reading(self.engine) as conn:
            folder = self.folders._get(conn, mailbox, folder_id, with_extended=False)
            c = t.items.c
            cond = [c.folder_id == folder_id, c.is_associated == associated]
            if where is None:
                total = folder.associated_count if associated else folder.total_count
                if hide_private:
                    total -= conn.scalar(select(func.count()).select_from(t.items).where(*cond, PRIVATE)) or 0
                    cond.append(NOT_PRIVATE)
            else:
                if hide_private:
                    cond.append(NOT_PRIVATE)
                cond.append(ITEMS.where(where))
                total = conn.scalar(select(func.count()).select_from(t.items).where(*cond)) or 0
            page = page(total) if callable(page) else page or Page()
            query = select(*_LIST_COLUMNS).where(*cond).order_by(*ITEMS.order_by(sort or [NEWEST_FIRST]))
            query = query.offset(page.offset)
            if page.limit is not None:
                query = query.limit(page.limit)
            found = [_item_from(r._mapping) for r in conn.execute(query)]
            self._load_details(conn, found, mime=False, attachments=with_attachments, with_extended=with_extended)
        return found, total

    def mime(self, mailbox: Mailbox, item_id: int) -> bytes | None:
        with reading(self.engine) as conn:
            self._require(conn, mailbox, item_id)
            blob = conn.scalar(select(t.item_mime.c.mime).where(t.item_mime.c.item_id == item_id))
            return bytes(blob) if blob is not None else None

    def find_by_message_id(self, mailbox: Mailbox, message_id: str) -> list[int]:
        with reading(self.engine) as conn:
            return list(conn.scalars(select(t.items.c.id).where(t.items.c.mailbox_id == mailbox.id,
                                                                t.items.c.message_id == message_id)))

    def _require(self, conn: Connection, mailbox: Mailbox, item_id: int, lock: bool = False) -> Row:
        query = select(*_LIST_COLUMNS).where(t.items.c.id == item_id, t.items.c.mailbox_id == mailbox.id)
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"item {item_id}")
        return row

    # -- creating ----------------------------------------------------------------------------
    def create(self, mailbox: Mailbox, folder_id: int, new: NewItem) -> Item:
        with writing(self.engine, mailbox.database_id) as w:
            self.folders._get(w.conn, mailbox, folder_id, with_extended=False)
            [item_id] = self._insert_many(w, [(mailbox, folder_id, new)])
            return self._fresh(w.conn, mailbox, item_id)

    def create_many(self, mailbox: Mailbox, folder_id: int, news: list[NewItem]) -> list[int]:
        """Create several items in one transaction (bulk import); returns their ids."""
        with writing(self.engine, mailbox.database_id) as w:
            self.folders._get(w.conn, mailbox, folder_id, with_extended=False)
            return self._insert_many(w, [(mailbox, folder_id, new) for new in news])

    def deliver(self, deliveries: list[Delivery]) -> list[str]:
        """Put each message in its mailbox's Inbox (or ``Delivery.folder``), all in one transaction (one commit, so one
        fsync for the lot). One outcome per delivery, in order: DELIVERED; DUPLICATE when the
        mailbox already holds that Message-ID with the same ``Delivery.key`` (an earlier delivery
        of the batch included); GONE when the mailbox no longer exists."""
        outcomes = []
        with writing(self.engine, {d.mailbox.database_id for d in deliveries}) as w:
            targets = _targets(w.conn, deliveries)
            # (mailbox, Message-ID, key) held already or delivered earlier in the batch
            taken = _held(w.conn, deliveries)
            entries: list[tuple[Mailbox, int, NewItem]] = []
            for d in deliveries:
                inbox = targets.get((d.mailbox.id, d.folder))
                if inbox is None:
                    outcomes.append(GONE)
                elif d.message_id and (d.mailbox.id, d.message_id, d.key) in taken:
                    outcomes.append(DUPLICATE)
                else:
                    if d.message_id:
                        taken.add((d.mailbox.id, d.message_id, d.key))
                    if d.key is not None:
                        d.item.props[_DELIVERY_KEY] = d.key
                    entries.append((d.mailbox, inbox, d.item))
                    outcomes.append(DELIVERED)
            self._insert_many(w, entries)
        return outcomes

    def _insert_many(self, w: Writer, entries: list[tuple[Mailbox, int, NewItem]]) -> list[int]:
        """Create items (mailbox, folder, item), in order: their change numbers taken with one
        statement per mailbox database, their MIME and journal rows written together, each
        folder's counts adjusted once."""
        now = utcnow()
        seqs: dict[int, Iterator[int]] = {}
        for database_id, count in Counter(m.database_id for m, _f, _n in entries).items():
            seqs[database_id] = iter(w.next_changes(database_id, count))
        rows: list[dict[str, Any]] = []
        written: list[tuple[Mailbox, int, NewItem, int, dict[str, Any]]] = []
        for mailbox, folder_id, new in entries:
            props = {k: v for k, v in new.props.items() if k not in _SERVER_PROPS and v is not None}
            props.setdefault("ItemClass", "IPM.Note")
            props.setdefault("DateTimeReceived", now)
            props.setdefault("IsRead", False)
            props.setdefault("IsAssociated", False)
            props.setdefault("Importance", "Normal")
            for att in new.attachments:
                att.size = att.size or len(att.content)
            columns, rest = _split_props(_with_picture(props, any(a.is_contact_photo for a in new.attachments)))
            seq = next(seqs[mailbox.database_id])  # taken first so the row is written once, complete
            columns.update(
                mailbox_id=mailbox.id, folder_id=folder_id, change_number=seq, date_created=now,
                last_modified=now, size=_size(props, new.body, new.mime, new.attachments),
                has_attachments=any(not a.is_inline for a in new.attachments),
                body_type=new.body.body_type if new.body else None, body=new.body.text if new.body else None,
                props=rest, created_by=new.created_by,
            )
            rows.append(columns)
            written.append((mailbox, folder_id, new, seq, props))
        ids = _insert_items(w.conn, rows)
        mimes, changes = [], []
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # folder: total, unread, associated
        for item_id, (mailbox, folder_id, new, seq, props) in zip(ids, written, strict=True):
            if new.mime is not None:
                mimes.append({"item_id": item_id, "mime": new.mime})
            extended.save(w.conn, "item", item_id, new.extended)
            for att in new.attachments:
                self._insert_attachment(w.conn, item_id, att)
            is_read, associated = bool(props["IsRead"]), bool(props["IsAssociated"])
            folder = counts[folder_id]
            folder[0] += 0 if associated else 1
            folder[1] += 0 if is_read or associated else 1
            folder[2] += 1 if associated else 0
            changes.append(Change(seq, mailbox.database_id, mailbox.id, "item", item_id, "created", folder_id))
        if mimes:
            _INSERT_MIME.run_many(w.conn, mimes)
        adjust_counts_many(w.conn, counts)
        w.record_many(changes)
        return ids

    # -- updating ----------------------------------------------------------------------------
    def update(self, mailbox: Mailbox, item_id: int, changes: ItemChanges,
               expected_change: int | None = None) -> Item:
        """Apply ``changes``; with ``expected_change`` set, refuse (Conflict) when the item changed since."""
        with writing(self.engine, mailbox.database_id) as w:
            row = self._require(w.conn, mailbox, item_id, lock=True)
            if expected_change is not None and expected_change != row.change_number:
                raise Conflict(f"item {item_id} changed since change {expected_change}")
            self._apply(w, mailbox, row, changes)
            return self._fresh(w.conn, mailbox, item_id)

    def _apply(self, w: Writer, mailbox: Mailbox, row: Row, changes: ItemChanges) -> None:
        item = _item_from(row._mapping)
        props = dict(item.props)
        for name in changes.delete_props:
            props.pop(name, None)
        props.update({k: v for k, v in changes.set_props.items() if k not in _SERVER_PROPS})
        columns, rest = _split_props(props)
        for name in changes.delete_props:
            if name in _COLUMN_OF_PROP and name not in ("ItemClass", "IsRead", "IsAssociated", "Importance"):
                columns[_COLUMN_OF_PROP[name]] = None
        columns.pop("date_created", None)
        columns.update(props=rest, last_modified=utcnow())
        if changes.body is not None:
            columns.update(body_type=changes.body.body_type, body=changes.body.text)
        elif changes.delete_body:
            columns.update(body_type=None, body=None)
        w.conn.execute(update(t.items).where(t.items.c.id == item.id).values(**columns))
        extended.save(w.conn, "item", item.id, changes.set_extended)
        extended.remove(w.conn, "item", item.id, changes.delete_extended)
        if not changes.keep_mime:
            w.conn.execute(delete(t.item_mime).where(t.item_mime.c.item_id == item.id))
        was_read, now_read = bool(row.is_read), bool(props.get("IsRead"))
        if was_read != now_read and not row.is_associated:
            adjust_counts(w.conn, item.folder_id, unread=-1 if now_read else 1)
        action = "read" if set(changes.set_props) == {"IsRead"} and not changes.set_extended else "modified"
        self._touch(w, mailbox, item.id, action, item.folder_id)

    def _touch(self, w: Writer, mailbox: Mailbox, item_id: int, action: str, folder_id: int) -> int:
        seq = w.journal(mailbox.database_id, mailbox.id, "item", item_id, action, folder_id)
        w.conn.execute(update(t.items).where(t.items.c.id == item_id).values(change_number=seq))
        return seq

    def set_mime(self, mailbox: Mailbox, item_id: int, mime: bytes) -> None:
        with writing(self.engine, mailbox.database_id) as w:
            self._require(w.conn, mailbox, item_id)
            w.conn.execute(delete(t.item_mime).where(t.item_mime.c.item_id == item_id))
            w.conn.execute(insert(t.item_mime).values(item_id=item_id, mime=mime))

    def mark_all_read(self, mailbox: Mailbox, folder_id: int, is_read: bool) -> int:
        """Set IsRead on every item of the folder; returns how many changed."""
        with writing(self.engine, mailbox.database_id) as w:
            self.folders._get(w.conn, mailbox, folder_id, with_extended=False)
            c = t.items.c
            changed = list(w.conn.scalars(select(c.id).where(c.folder_id == folder_id, c.is_associated.is_(False),
                                                             c.is_read.is_(not is_read))))
            for item_id in changed:
                w.conn.execute(update(t.items).where(c.id == item_id).values(is_read=is_read))
                self._touch(w, mailbox, item_id, "read", folder_id)
            adjust_counts(w.conn, folder_id, unread=-len(changed) if is_read else len(changed))
            return len(changed)

    # -- moving, copying, deleting -------------------------------------------------------------
    def move(self, mailbox: Mailbox, item_id: int, to_folder: int) -> Item:
        """Move to ``to_folder``; the moved item gets a new id (Exchange 2007 SP1 RU4 semantics)."""
        with writing(self.engine, mailbox.database_id) as w:
            new_id = self._move(w, mailbox, item_id, to_folder)
            return self._fresh(w.conn, mailbox, new_id)

    def _move(self, w: Writer, mailbox: Mailbox, item_id: int, to_folder: int) -> int:
        self.folders._get(w.conn, mailbox, to_folder, with_extended=False)
        row = self._require(w.conn, mailbox, item_id, lock=True)
        new_id = self._copy_row(w, mailbox, row, to_folder, "moved")
        for table in (t.attachments, t.extended_properties):
            w.conn.execute(update(table).where(table.c.item_id == item_id).values(item_id=new_id))
        w.conn.execute(update(t.item_mime).where(t.item_mime.c.item_id == item_id).values(item_id=new_id))
        self._delete_row(w, mailbox, row, journal=False)
        return new_id

    def copy(self, mailbox: Mailbox, item_id: int, to_folder: int) -> Item:
        with writing(self.engine, mailbox.database_id) as w:
            self.folders._get(w.conn, mailbox, to_folder, with_extended=False)
            row = self._require(w.conn, mailbox, item_id)
            new_id = self._copy_with_details(w, mailbox, row, to_folder)
            return self._fresh(w.conn, mailbox, new_id)

    def copy_folder_items(self, w: Writer, mailbox: Mailbox, from_folder: int, to_folder: int) -> None:
        rows = w.conn.execute(select(t.items).where(t.items.c.folder_id == from_folder)).all()
        for row in rows:
            self._copy_with_details(w, mailbox, row, to_folder)

    def _copy_with_details(self, w: Writer, mailbox: Mailbox, row: Row, to_folder: int) -> int:
        new_id = self._copy_row(w, mailbox, row, to_folder, "copied")
        extended.copy(w.conn, "item", row.id, new_id)
        for att in self._attachments(w.conn, [row.id], with_content=True).get(row.id, []):
            self._insert_attachment(w.conn, new_id, att)
        blob = w.conn.scalar(select(t.item_mime.c.mime).where(t.item_mime.c.item_id == row.id))
        if blob is not None:
            w.conn.execute(insert(t.item_mime).values(item_id=new_id, mime=blob))
        return new_id

    def _copy_row(self, w: Writer, mailbox: Mailbox, row: Row, to_folder: int, action: str) -> int:
        values = {k: v for k, v in row._mapping.items() if k not in ("id", "folder_id", "change_number")}
        if "body" not in values:
            full = w.conn.execute(select(t.items.c.body).where(t.items.c.id == row.id)).first()
            values["body"] = full[0] if full else None
        values.update(folder_id=to_folder, change_number=0, last_modified=utcnow())
        new_id = int(w.conn.execute(insert(t.items).values(**values)).inserted_primary_key[0])
        associated = bool(values["is_associated"])
        adjust_counts(w.conn, to_folder, total=0 if associated else 1, associated=1 if associated else 0,
                      unread=0 if values["is_read"] or associated else 1)
        seq = w.journal(mailbox.database_id, mailbox.id, "item", new_id, action, to_folder, row.folder_id, row.id)
        w.conn.execute(update(t.items).where(t.items.c.id == new_id).values(change_number=seq))
        return new_id

    def delete(self, mailbox: Mailbox, item_id: int) -> None:
        """Remove the item for good (HardDelete)."""
        with writing(self.engine, mailbox.database_id) as w:
            self._delete_row(w, mailbox, self._require(w.conn, mailbox, item_id, lock=True))

    def move_or_delete(self, mailbox: Mailbox, item_id: int, to_folder: int | None) -> int | None:
        """Soft delete: move to ``to_folder`` (Deleted Items / Recoverable Items), or delete when
        the item is already there or ``to_folder`` is None. Returns the new id if moved."""
        with writing(self.engine, mailbox.database_id) as w:
            row = self._require(w.conn, mailbox, item_id, lock=True)
            if to_folder is None or row.folder_id == to_folder:
                self._delete_row(w, mailbox, row)
                return None
            return self._move(w, mailbox, item_id, to_folder)

    def _delete_row(self, w: Writer, mailbox: Mailbox, row: Row, journal: bool = True) -> None:
        w.conn.execute(delete(t.items).where(t.items.c.id == row.id))
        associated = bool(row.is_associated)
        adjust_counts(w.conn, row.folder_id, total=0 if associated else -1, associated=-1 if associated else 0,
                      unread=0 if row.is_read or associated else -1)
        if journal:
            w.journal(mailbox.database_id, mailbox.id, "item", row.id, "deleted", row.folder_id)

    def empty_folder(self, mailbox: Mailbox, folder_id: int, delete_subfolders: bool,
                     to_folder: int | None = None) -> None:
        """Delete every item of the folder (or move them to ``to_folder``), and optionally its subfolders."""
        with writing(self.engine, mailbox.database_id) as w:
            self.folders._get(w.conn, mailbox, folder_id, with_extended=False)
            rows = w.conn.execute(select(*_LIST_COLUMNS).where(t.items.c.folder_id == folder_id,
                                                               t.items.c.is_associated.is_(False))).all()
            for row in rows:
                if to_folder is not None and to_folder != folder_id:
                    self._move(w, mailbox, row.id, to_folder)
                else:
                    self._delete_row(w, mailbox, row)
            if delete_subfolders:
                self.folders.delete_subfolders(w, mailbox, folder_id)

    # -- attachments ---------------------------------------------------------------------------
    def _attachments(self, conn: Connection, item_ids: list[int], with_content: bool,
                     only: int | None = None) -> dict[int, list[Attachment]]:
        a = t.attachments.c
        columns = [c for c in t.attachments.c if with_content or c.key != "content"]
        query = select(*columns).where(a.item_id.in_(item_ids)).order_by(a.id)
        if only is not None:
            query = query.where(a.id == only)
        found: dict[int, list[Attachment]] = {}
        for row in conn.execute(query):
            found.setdefault(row.item_id, []).append(_attachment_from(row._mapping))
        return found

    def _insert_attachment(self, conn: Connection, item_id: int, att: Attachment) -> int:
        att.last_modified = att.last_modified or utcnow()
        return int(conn.execute(insert(t.attachments).values(
            item_id=item_id, kind=att.kind, name=att.name, content_type=att.content_type,
            content_id=att.content_id, content_location=att.content_location, is_inline=att.is_inline,
            is_contact_photo=att.is_contact_photo, size=att.size or len(att.content),
            last_modified=att.last_modified, content=att.content)).inserted_primary_key[0])

    def attachment(self, mailbox: Mailbox, item_id: int, attachment_id: int) -> Attachment:
        """One attachment of the item, with its content."""
        with reading(self.engine) as conn:
            self._require(conn, mailbox, item_id)
            found = self._attachments(conn, [item_id], with_content=True, only=attachment_id).get(item_id)
        if not found:
            raise NotFound(f"attachment {attachment_id}")
        return found[0]

    def attachments(self, mailbox: Mailbox, item_id: int) -> list[Attachment]:
        """The item's attachments with their content (for MIME and ExportItems)."""
        with reading(self.engine) as conn:
            self._require(conn, mailbox, item_id)
            return self._attachments(conn, [item_id], with_content=True).get(item_id, [])

    def add_attachment(self, mailbox: Mailbox, item_id: int, att: Attachment) -> tuple[Attachment, Item]:
        """Attach to the item; returns the stored attachment and the item with its new change number."""
        with writing(self.engine, mailbox.database_id) as w:
            row = self._require(w.conn, mailbox, item_id, lock=True)
            att.size = att.size or len(att.content)
            att.id = self._insert_attachment(w.conn, item_id, att)
            att.item_id = item_id
            self._refresh_after_attachments(w, mailbox, row)
            item = self._fresh(w.conn, mailbox, item_id, body=False)
            return att, item  # type: ignore[return-value]

    def delete_attachment(self, mailbox: Mailbox, item_id: int, attachment_id: int) -> Item:
        with writing(self.engine, mailbox.database_id) as w:
            row = self._require(w.conn, mailbox, item_id, lock=True)
            deleted = w.conn.execute(delete(t.attachments).where(t.attachments.c.id == attachment_id,
                                                                 t.attachments.c.item_id == item_id)).rowcount
            if not deleted:
                raise NotFound(f"attachment {attachment_id}")
            self._refresh_after_attachments(w, mailbox, row)
            return self._fresh(w.conn, mailbox, item_id, body=False)

    def replace(self, mailbox: Mailbox, item_id: int, new: NewItem) -> Item:
        """Overwrite the item with ``new`` where it is: same id and folder, a new change number
        (UploadItems with CreateAction Update). It stays associated or not, as it was."""
        with writing(self.engine, mailbox.database_id) as w:
            row = self._require(w.conn, mailbox, item_id, lock=True)
            props = {k: v for k, v in new.props.items() if k not in _SERVER_PROPS and k != "IsAssociated"}
            keep_ext = {e.key for e in new.extended}
            old_ext = [e.key for e in extended.load(w.conn, "item", [item_id])[item_id] if e.key not in keep_ext]
            w.conn.execute(delete(t.attachments).where(t.attachments.c.item_id == item_id))
            for att in new.attachments:
                self._insert_attachment(w.conn, item_id, att)
            self._apply(w, mailbox, row, ItemChanges(
                set_props=props, delete_props=[k for k in _item_from(row._mapping).props
                                               if k not in props and k not in _SERVER_PROPS],
                body=new.body, delete_body=new.body is None, set_extended=new.extended, delete_extended=old_ext))
            self._refresh_after_attachments(w, mailbox, row, journal=False)
            if new.mime is not None:
                w.conn.execute(insert(t.item_mime).values(item_id=item_id, mime=new.mime))
                w.conn.execute(update(t.items).where(t.items.c.id == item_id).values(size=len(new.mime)))
            return self._fresh(w.conn, mailbox, item_id)

    def _refresh_after_attachments(self, w: Writer, mailbox: Mailbox, row: Row, journal: bool = True) -> None:
        """HasAttachments and Size after attachments changed; the stored MIME no longer matches."""
        a = t.attachments.c
        rows = w.conn.execute(select(a.size, a.is_inline, a.is_contact_photo).where(a.item_id == row.id)).all()
        current = w.conn.execute(select(t.items.c.props, t.items.c.body_type, t.items.c.body)
                                 .where(t.items.c.id == row.id)).one()
        body = Body(current.body_type, current.body) if current.body_type else None
        size = _size(current.props or {}, body, None, [Attachment("file", size=s) for s, _, _ in rows])
        props = _with_picture(current.props or {}, any(photo for _, _, photo in rows))
        w.conn.execute(update(t.items).where(t.items.c.id == row.id).values(
            has_attachments=any(not inline for _, inline, _ in rows), size=size, last_modified=utcnow(), props=props))
        w.conn.execute(delete(t.item_mime).where(t.item_mime.c.item_id == row.id))
        if journal:
            self._touch(w, mailbox, row.id, "modified", row.folder_id)


def _targets(conn: Connection, deliveries: list[Delivery]) -> dict[tuple[int, str], int]:
    """The folder each delivery goes to, by (mailbox, distinguished folder), with one statement;
    a mailbox removed meanwhile has none."""
    rows = _TARGETS.run(conn, mailboxes=sorted({d.mailbox.id for d in deliveries}),
                        folders=sorted({d.folder for d in deliveries}))
    return {(row["mailbox_id"], row["distinguished_id"]): row["id"] for row in rows}


def _held(conn: Connection, deliveries: list[Delivery]) -> set[tuple[int, str, str | None]]:
    """(mailbox, Message-ID, key) of the items the deliveries' mailboxes hold already under their
    Message-IDs, with one statement (the index on mailbox and Message-ID finds the few candidates)."""
    with_id = [d for d in deliveries if d.message_id]
    if not with_id:
        return set()
    rows = _HELD.run(conn, mailboxes=sorted({d.mailbox.id for d in with_id}),
                     message_ids=sorted({d.message_id for d in with_id}))
    return {(row["mailbox_id"], row["message_id"], (row["props"] or {}).get(_DELIVERY_KEY)) for row in rows}


def _with_picture(props: dict[str, Any], picture: bool) -> dict[str, Any]:
    """``props`` with HasPicture saying whether a contact photo is attached (kept once set, so a
    contact whose photo went says false; an item that never had one does not carry it)."""
    if picture or "HasPicture" in props:
        return {**props, "HasPicture": picture}
    return props
