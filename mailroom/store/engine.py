"""Database engines for the two back ends, transactions, and the change journal writer.

Every writing transaction that changes a mailbox appends journal rows; their sequence numbers
come from a per-database counter row that is bumped inside the same transaction. The counter's
row lock (PostgreSQL) or the single writer (SQLite ``BEGIN IMMEDIATE``) makes commits happen in
sequence order, so a reader that has seen N has seen everything up to N.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.pool import NullPool

from . import tables as t
from .model import utcnow


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'mailroom.db').resolve()}"


# The driver's own transactions are off (autocommit): BEGIN is issued as this store needs it.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"check_same_thread": False, "timeout": 30, "isolation_level": None}


def make_engine(url: str, pool_size: int = 8) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql+psycopg://...``, tuned for this store."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            json_serializer=_dumps,
            connect_args=SQLITE_CONNECT_ARGS,
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql"):
        return create_engine(url, json_serializer=_dumps, pool_size=pool_size, max_overflow=pool_size,
                             pool_pre_ping=True)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://...")


def make_admin_engine(url: str) -> Engine:
    """A short-lived engine for one-off admin work (no pool kept open)."""
    return create_engine(url, poolclass=NullPool) if url.startswith("postgresql") else make_engine(url, 1)


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # acknowledge only what is on disk
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the lock up front so it never fails upgrading a read lock mid-transaction.
    # Issued on the driver connection directly: this runs for every transaction, and going through
    # SQLAlchemy's statement execution here would cost more than the BEGIN itself.
    conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
        "BEGIN IMMEDIATE" if conn.get_execution_options().get("writer") else "BEGIN")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn


class DriverReads:
    """Read transactions straight on a driver connection (its DB-API cursor), for the hottest reads:
    they skip SQLAlchemy's per-connection and per-transaction bookkeeping. On a SQLite file each
    thread keeps one connection of its own for these reads (a pool checkout and return cost more
    than the read itself); they are closed when the engine is disposed (``Store.close``). Each
    read is its own transaction, so it sees every commit made before it began."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        database = engine.url.database or ""
        self._path = database if engine.dialect.name == "sqlite" and database not in ("", ":memory:") else None
        self._local = threading.local()
        self._open: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._generation = 0
        if self._path is not None:
            event.listen(engine, "engine_disposed", self._close_all)

    @contextmanager
    def cursor(self, transaction: bool = True) -> Iterator[Any]:
        """A cursor for one read: in a transaction of its own, or (``transaction`` False, for a read
        of one statement, which SQLite runs on one snapshot anyway) without BEGIN and COMMIT."""
        if self._path is None:
            with self._pooled() as cursor:
                yield cursor
            return
        conn = self._own()
        cursor = conn.cursor()
        try:
            if transaction:
                cursor.execute("BEGIN")  # the connection is in autocommit mode, as the engine's are
            yield cursor
            if transaction:
                conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            cursor.close()

    @contextmanager
    def _pooled(self) -> Iterator[Any]:
        conn = self.engine.raw_connection()
        try:
            yield conn.cursor()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()

    def _own(self) -> sqlite3.Connection:
        """This thread's connection, opened (with the engine's settings) on first use."""
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == self._generation:
            return held[1]
        conn = sqlite3.connect(self._path or "", **SQLITE_CONNECT_ARGS)
        _sqlite_connect(conn, None)
        with self._lock:
            self._open.append(conn)
        self._local.held = (self._generation, conn)
        return conn

    def _close_all(self, _engine: Engine) -> None:
        with self._lock:
            self._generation += 1  # a thread holding a closed connection opens a new one
            for conn in self._open:
                conn.close()
            self._open.clear()


_MAX_FORMS = 512  # forms kept per statement (as SQLAlchemy's own compiled cache keeps 500)


class _Form(NamedTuple):
    """A statement as the driver runs it, for one dialect, set of columns and IN-list lengths."""

    sql: str
    names: tuple[str, ...] | None  # the positional parameters' names in order (None: named parameters)
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # parameter name, converter
    results: tuple[tuple[int, Callable[[Any], Any]], ...]  # result column position, converter
    expansion: tuple[tuple[str, tuple[str, ...]], ...]  # an IN list's parameter, the names of its items


class Prepared:
    """A statement compiled once per dialect (an INSERT: per set of columns given; one with IN
    lists: per their lengths) and run on a driver cursor, skipping SQLAlchemy's per-statement
    work, which costs about ten times the driver's execute for the short statements of reads and
    writes that run all the time. Values are converted by the bind and result processors
    SQLAlchemy itself would apply (dicts to JSON text and back, booleans to integers and back on
    SQLite), IN lists expanded as SQLAlchemy expands them. Every value must be a parameter: a
    statement that would need a column default computed by SQLAlchemy is refused when compiled."""

    def __init__(self, statement: Select[Any] | Insert | Update) -> None:
        self.statement = statement
        self.keys = tuple(c.key for c in statement.exported_columns)
        self._by_columns = isinstance(statement, Insert)  # compiled for the columns given
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[Any, tuple[str, ...]]] = {}
        self._forms: dict[tuple[str, tuple[str, ...], tuple[int, ...]], _Form] = {}

    def _for(self, dialect: Dialect, params: dict[str, Any]) -> _Form:
        columns = tuple(params) if self._by_columns else ()
        found = self._compiled.get((dialect.name, columns))
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=list(columns) or None)
            if compiled.insert_prefetch or compiled.update_prefetch:
                raise ValueError(f"give every column a value: {compiled.string}")
            found = self._compiled[(dialect.name, columns)] = (
                compiled, tuple(name for name, bind in compiled.binds.items() if bind.expanding))
        compiled, expanding = found
        sizes = tuple(len(params[name]) for name in expanding)
        form = self._forms.get((dialect.name, columns, sizes))
        if form is None:
            if len(self._forms) >= _MAX_FORMS:  # IN lists of ever new lengths: start over
                self._forms.clear()
            lengths = dict(zip(expanding, sizes, strict=True))
            form = self._forms[(dialect.name, columns, sizes)] = self._form(dialect, compiled, lengths)
        return form

    def _form(self, dialect: Dialect, compiled: Any, sizes: dict[str, int]) -> _Form:
        state = compiled.construct_expanded_state({name: [None] * sizes[name] if name in sizes else None
                                                   for name in compiled.binds})
        expansion = tuple((name, tuple(state.parameter_expansion[name])) for name in sizes)
        processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                      for name, bind in compiled.binds.items()}
        binds = [(name, processors[name]) for name in compiled.binds if name not in sizes and processors[name]]
        binds += [(item, processors[name]) for name, items in expansion if processors[name] for item in items]
        results = ((i, c.type.dialect_impl(dialect).result_processor(dialect, None))
                   for i, c in enumerate(self.statement.exported_columns))
        return _Form(state.statement, tuple(state.positiontup) if compiled.positional else None, tuple(binds),
                     tuple((i, p) for i, p in results if p), expansion)

    @staticmethod
    def _values(form: _Form, params: dict[str, Any]) -> Any:
        if form.binds or form.expansion:
            params = dict(params)
            for name, items in form.expansion:
                params.update(zip(items, params.pop(name), strict=True))
            for name, process in form.binds:
                if name in params:
                    params[name] = process(params[name])
        return tuple(params[n] for n in form.names) if form.names is not None else params

    def _fetch(self, cursor: Any, form: _Form) -> list[dict[str, Any]]:
        found = []
        for row in cursor.fetchall():
            values = list(row)
            for i, process in form.results:
                values[i] = process(values[i])
            found.append(dict(zip(self.keys, values, strict=True)))
        return found

    def rows(self, cursor: Any, dialect: Dialect, **params: Any) -> list[dict[str, Any]]:
        """Run the statement on ``cursor``; the rows it returns, each a dict by column key."""
        form = self._for(dialect, params)
        cursor.execute(form.sql, self._values(form, params))
        return self._fetch(cursor, form) if self.keys else []

    def run(self, conn: Connection, **params: Any) -> list[dict[str, Any]]:
        """``rows`` in the transaction ``conn`` holds."""
        return self.rows(_cursor(conn), conn.dialect, **params)

    def run_many(self, conn: Connection, params: list[dict[str, Any]]) -> None:
        """The statement once for each of ``params`` (all with the same keys), in the transaction
        ``conn`` holds, with one executemany."""
        if params:
            form = self._for(conn.dialect, params[0])
            _cursor(conn).executemany(form.sql, [self._values(form, p) for p in params])

    def inserted(self, conn: Connection, params: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An INSERT ... RETURNING of several rows (all with the same keys), the rows it returns in
        their order. SQLite runs it row by row in any case, so there each row on the driver;
        elsewhere through SQLAlchemy, which sends the rows as one statement (insertmanyvalues)."""
        if conn.dialect.name != "sqlite":
            return [dict(row._mapping) for row in conn.execute(self.statement, params)]
        cursor = _cursor(conn)
        return [found for p in params for found in self.rows(cursor, conn.dialect, **p)]


def _cursor(conn: Connection) -> Any:
    """A driver cursor in the transaction ``conn`` holds (refused outside one: it would run alone)."""
    if not conn.in_transaction():
        raise RuntimeError("a prepared statement runs inside a transaction")
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


@contextmanager
def writing(engine: Engine, database_id: int | Collection[int] | None = None) -> Iterator[Writer]:
    """A writing transaction. Naming the mailbox database makes PostgreSQL take that database's
    counter row lock first, before any item or folder row lock, so writers of one database queue
    in one order and cannot deadlock (SQLite's BEGIN IMMEDIATE already serialises writers). A
    transaction writing in several databases names them all: their locks are taken in id order."""
    with engine.connect() as conn:
        conn.execution_options(writer=True)
        with conn.begin():
            if database_id is not None and conn.dialect.name == "postgresql":
                for locked in sorted({database_id} if isinstance(database_id, int) else set(database_id)):
                    conn.execute(select(t.mailbox_databases.c.id).where(t.mailbox_databases.c.id == locked)
                                 .with_for_update())
            writer = Writer(conn)
            yield writer
            if writer.mailboxes and conn.dialect.name == "postgresql":
                _notify(conn, writer.mailboxes)
    if writer.mailboxes:
        for hook in COMMIT_HOOKS:
            hook(engine_key(engine), frozenset(writer.mailboxes))


COMMIT_HOOKS: list[Callable[[str, frozenset[int]], None]] = []
"""Called in the writing thread after each commit that journalled a change, with the engine's key
and the ids of the mailboxes changed (notifications wake on it)."""

NOTIFY_CHANNEL = "mailroom_journal"
ORIGIN = uuid.uuid4().hex
"""This process, in the NOTIFY payloads it sends (it wakes its own listeners without them)."""


def engine_key(engine: Engine) -> str:
    """Names the database an engine opens, the same for every engine of one URL in this process."""
    return engine.url.render_as_string(hide_password=True)


def _notify(conn: Connection, mailboxes: set[int]) -> None:
    """Tell other mailroom processes on this PostgreSQL database which mailboxes this transaction
    changed: PostgreSQL delivers the NOTIFY when (and only if) the transaction commits."""
    payload = f"{ORIGIN} {','.join(map(str, sorted(mailboxes)))}"
    conn.execute(select(func.pg_notify(NOTIFY_CHANNEL, payload)))


def parse_notify(payload: str) -> frozenset[int] | None:
    """The mailboxes a NOTIFY from another process names; None for this process's own or a garbled one."""
    origin, _, listed = payload.partition(" ")
    if origin == ORIGIN:
        return None
    try:
        return frozenset(int(n) for n in listed.split(",") if n)
    except ValueError:
        return None


class Change(NamedTuple):
    """One journal row: a change whose number was taken with ``next_change(s)``."""

    seq: int
    database_id: int
    mailbox_id: int
    kind: str
    object_id: int
    action: str
    folder_id: int | None
    old_folder_id: int | None = None
    old_object_id: int | None = None


class Writer:
    """A writing transaction: the connection plus the journal appender."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.mailboxes: set[int] = set()  # whose journal this transaction appended to

    def next_change(self, database_id: int) -> int:
        return self.next_changes(database_id, 1)[0]

    def next_changes(self, database_id: int, count: int) -> range:
        """``count`` consecutive change numbers of one mailbox database, taken with one statement."""
        last = int(_NEXT_CHANGES.run(self.conn, database=database_id, count=count)[0]["last_change"])
        return range(last - count + 1, last + 1)

    def journal(self, database_id: int, mailbox_id: int, kind: str, object_id: int, action: str,
                folder_id: int | None, old_folder_id: int | None = None,
                old_object_id: int | None = None) -> int:
        """Record one change; returns its sequence number, which is also the object's new change number."""
        seq = self.next_change(database_id)
        self.record(seq, database_id, mailbox_id, kind, object_id, action, folder_id, old_folder_id, old_object_id)
        return seq

    def record(self, seq: int, database_id: int, mailbox_id: int, kind: str, object_id: int, action: str,
               folder_id: int | None, old_folder_id: int | None = None, old_object_id: int | None = None) -> None:
        """Write the journal row for a change whose number was taken with ``next_change``."""
        self.record_many([Change(seq, database_id, mailbox_id, kind, object_id, action, folder_id, old_folder_id,
                                 old_object_id)])

    def replace_row(self, table: Table, mailbox_id: int, **values: object) -> None:
        """Make ``values`` the mailbox's one row of a per-mailbox settings table (keyed by mailbox_id)."""
        self.conn.execute(delete(table).where(table.c.mailbox_id == mailbox_id))
        self.conn.execute(insert(table).values(mailbox_id=mailbox_id, **values))

    def record_many(self, changes: list[Change]) -> None:
        """Write the journal rows of several changes with one statement."""
        if not changes:
            return
        committed = utcnow()
        self.mailboxes.update(c.mailbox_id for c in changes)
        _JOURNAL_ROW.run_many(self.conn, [dict(
            database_id=c.database_id, seq=c.seq, mailbox_id=c.mailbox_id, object_kind=c.kind, object_id=c.object_id,
            action=c.action, folder_id=c.folder_id, old_folder_id=c.old_folder_id, old_object_id=c.old_object_id,
            committed=committed) for c in changes])


# Every writer runs these: on the driver (``Prepared``).
_NEXT_CHANGES = Prepared(update(t.mailbox_databases).where(t.mailbox_databases.c.id == bindparam("database"))
                         .values(last_change=t.mailbox_databases.c.last_change + bindparam("count"))
                         .returning(t.mailbox_databases.c.last_change))
_JOURNAL_ROW = Prepared(insert(t.journal))
