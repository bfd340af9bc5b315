"""Domains, mailbox databases and mailboxes (the directory)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, Row, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import tables as t
from .cache import SharedCache, shared
from .default_folders import DEFAULT_FOLDERS
from .engine import Writer, reading, writing
from .errors import AlreadyExists, InvalidOperation, NotFound
from .model import DirectoryEntry, Domain, Mailbox, utcnow
from .scopes import Grant, Scope, parse_scope
from .sqlquery import _like_escape

DEFAULT_DATABASE = "DB01"

_MAILBOX_COLUMNS = (
    t.mailboxes.c.id, t.mailboxes.c.guid, t.mailboxes.c.address, t.mailboxes.c.display_name,
    t.mailboxes.c.database_id, t.mailbox_databases.c.name, t.mailbox_databases.c.guid, t.mailboxes.c.kind,
)
KINDS = ("user", "room", "equipment")
# The directory attributes a mailbox may carry, by the EWS Contact element (or PhysicalAddress
# entry field) that shows them; phone numbers are kept apart, by PhoneNumbers key.
ATTRIBUTES = ("GivenName", "Initials", "Surname", "CompanyName", "Department", "JobTitle", "OfficeLocation",
              "AssistantName", "Notes", "Street", "City", "State", "CountryOrRegion", "PostalCode")
# PhoneNumberKeyType: the kinds of phone number an entry (directory or contact) can hold.
PHONE_KEYS = ("AssistantPhone", "BusinessFax", "BusinessPhone", "BusinessPhone2", "Callback", "CarPhone",
              "CompanyMainPhone", "HomeFax", "HomePhone", "HomePhone2", "Isdn", "MobilePhone", "OtherFax",
              "OtherTelephone", "Pager", "PrimaryPhone", "RadioPhone", "Telex", "TtyTddPhone")


def _mailbox_query():  # noqa: ANN202 - a SQLAlchemy Select
    return select(*_MAILBOX_COLUMNS).join(t.mailbox_databases,
                                          t.mailbox_databases.c.id == t.mailboxes.c.database_id)


def _mailbox(row: Row, aliases: tuple[str, ...] = ()) -> Mailbox:
    return Mailbox(id=row[0], guid=row[1], address=row[2], display_name=row[3], database_id=row[4],
                   database_name=row[5], database_guid=row[6], aliases=aliases, kind=row[7])


def mailbox_sid(guid: str) -> str:
    """A stable Windows-style SID for a mailbox (its GUID's 128 bits as four sub-authorities after
    the domain prefix S-1-5-21), so ExchangeImpersonation by SID works without a directory of SIDs."""
    parts = uuid.UUID(guid).bytes
    return "S-1-5-21-" + "-".join(str(int.from_bytes(parts[i:i + 4], "big")) for i in range(0, 16, 4))


def guid_of_sid(sid: str) -> str | None:
    """The mailbox GUID a ``mailbox_sid`` stands for, or None for any other SID."""
    fields = sid.strip().upper().split("-")
    if fields[:4] != ["S", "1", "5", "21"] or len(fields) != 8 or not all(f.isdigit() for f in fields[4:]):
        return None
    values = [int(f) for f in fields[4:]]
    if any(v >= 2 ** 32 for v in values):
        return None
    return str(uuid.UUID(bytes=b"".join(v.to_bytes(4, "big") for v in values)))


def _merged(current: dict[str, str], changes: dict[str, str]) -> dict[str, str]:
    """``current`` with ``changes`` applied (an empty or blank value removes the key)."""
    merged = {**current, **{k: v.strip() for k, v in changes.items()}}
    return {k: v for k, v in merged.items() if v}


def normalize_address(address: str) -> str:
    address = address.strip()
    if address.count("@") != 1 or address.startswith("@") or address.endswith("@") or " " in address:
        raise ValueError(f"not an e-mail address: {address!r}")
    return address.lower()


FLOW_CACHE_SECONDS = 10.0
"""How long mail flow (``accepts``, ``lookup``) trusts a directory answer changed by another process."""


class Directory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._flow_caches: list[SharedCache] = []
        self._domains = self.flow_cache("domains")
        self._recipients = self.flow_cache("recipients")

    def flow_cache(self, name: str) -> SharedCache:
        """A mail-flow cache of answers that hold mailboxes (``name`` unique per database): every
        directory change drops them, as it drops the directory's own."""
        cache = shared(f"directory.{name}", self.engine, FLOW_CACHE_SECONDS)
        self._flow_caches.append(cache)
        return cache

    @contextmanager
    def _writing(self) -> Iterator[Writer]:
        """A transaction changing domains, mailboxes or aliases: mail flow's cached answers are
        dropped once it ends (see store/cache.py)."""
        try:
            with writing(self.engine) as w:
                yield w
        finally:
            for cache in self._flow_caches:
                cache.forget()

    # -- mail flow (cached) ------------------------------------------------------------------
    def accepts(self, domain: str) -> bool:
        """Whether ``domain`` is an accepted domain; cached, and a domain not in the cached set is
        looked up again (so one added by another process is accepted at once)."""
        domain = domain.strip().lower()
        cached = self._domains.get("", lambda: frozenset(d.name for d in self.domains()))
        return bool(cached and domain in cached) or domain in {d.name for d in self.domains()}

    def lookup(self, address: str) -> Mailbox | None:
        """``mailbox_by_address`` for mail flow (recipient checks, categorizer, delivery): found
        mailboxes are cached (see store/cache.py for how changes reach it)."""
        address = address.strip().lower()
        return self._recipients.get(address, lambda: self.mailbox_by_address(address))

    def cached_lookup(self, address: str) -> Mailbox | None:
        """``lookup``'s answer if the cache holds it, without the store (safe on an event loop);
        None means "not known here", not "no such mailbox": ask ``lookup``."""
        return self._recipients.peek(address.strip().lower())

    def known_recipient(self, address: str) -> bool:
        """Whether the caches alone show ``address`` to be a mailbox in an accepted domain: an
        answer without the store, for an SMTP recipient check on the event loop. False means
        "not known", not "unknown": ask ``accepts`` and ``lookup``."""
        domains = self._domains.peek("")
        return bool(domains and address.strip().rpartition("@")[2].lower() in domains
                    and self.cached_lookup(address))

    # -- domains -----------------------------------------------------------------------------
    def add_domain(self, name: str) -> Domain:
        name = name.strip().lower().rstrip(".")
        if not name or "@" in name or " " in name or "." not in name:
            raise ValueError(f"not a domain name: {name!r}")
        try:
            with self._writing() as w:
                created = utcnow()
                new_id = w.conn.execute(insert(t.domains).values(name=name, created=created)).inserted_primary_key
        except IntegrityError as exc:
            raise AlreadyExists(f"domain {name} already exists") from exc
        return Domain(id=new_id[0], name=name, created=created)

    def domains(self) -> list[Domain]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(t.domains).order_by(t.domains.c.name)).all()
        return [Domain(id=r.id, name=r.name, created=r.created) for r in rows]

    def remove_domain(self, name: str) -> None:
        with self._writing() as w:
            domain_id = w.conn.scalar(select(t.domains.c.id).where(t.domains.c.name == name.lower()))
            if domain_id is None:
                raise NotFound(f"no domain {name}")
            used = w.conn.scalar(select(func.count()).where(t.mailboxes.c.domain_id == domain_id))
            if used:
                raise InvalidOperation(f"domain {name} still has {used} mailbox(es)")
            groups = w.conn.scalar(select(func.count()).where(t.groups.c.domain_id == domain_id))
            if groups:
                raise InvalidOperation(f"domain {name} still has {groups} group(s)")
            aliases = w.conn.scalar(select(func.count()).where(
                t.aliases.c.address.like("%@" + _like_escape(name.lower()), escape="\\")))
            if aliases:  # mail flow finds mailboxes, aliases and groups in the accepted domains only
                raise InvalidOperation(f"domain {name} still has {aliases} alias(es)")
            w.conn.execute(delete(t.domains).where(t.domains.c.id == domain_id))

    # -- databases ---------------------------------------------------------------------------
    def _database_id(self, w: Writer, name: str) -> int:
        found = w.conn.scalar(select(t.mailbox_databases.c.id).where(t.mailbox_databases.c.name == name))
        if found is not None:
            return int(found)
        return int(w.conn.execute(insert(t.mailbox_databases).values(
            name=name, guid=str(uuid.uuid4()), last_change=0)).inserted_primary_key[0])

    # -- mailboxes ---------------------------------------------------------------------------
    def add_mailbox(self, address: str, password_hash: str | None, display_name: str | None = None,
                    database: str = DEFAULT_DATABASE, kind: str = "user") -> Mailbox:
        address = normalize_address(address)
        if kind not in KINDS:
            raise ValueError(f"not a mailbox kind: {kind!r} (one of {', '.join(KINDS)})")
        domain_name = address.split("@", 1)[1]
        with self._writing() as w:
            domain_id = w.conn.scalar(select(t.domains.c.id).where(t.domains.c.name == domain_name))
            if domain_id is None:
                raise NotFound(f"domain {domain_name} is not an accepted domain here (mailroom domain add)")
            if self.taken(w, address):
                raise AlreadyExists(f"{address} is already in use")
            database_id = self._database_id(w, database)
            mailbox_id = w.conn.execute(insert(t.mailboxes).values(
                guid=str(uuid.uuid4()), database_id=database_id, domain_id=domain_id, address=address,
                display_name=display_name or address.split("@", 1)[0], password_hash=password_hash,
                created=utcnow(), kind=kind,
            )).inserted_primary_key[0]
            self._create_default_folders(w, mailbox_id, database_id)
        found = self.mailbox_by_address(address)
        assert found is not None  # just committed
        return found

    def taken(self, w: Writer, address: str) -> bool:
        """Whether a mailbox, an alias or a group already has this (lower-case) address."""
        return bool(
            w.conn.scalar(select(func.count()).where(t.mailboxes.c.address == address))
            or w.conn.scalar(select(func.count()).where(t.aliases.c.address == address))
            or w.conn.scalar(select(func.count()).where(t.groups.c.address == address))
        )

    def _create_default_folders(self, w: Writer, mailbox_id: int, database_id: int) -> None:
        by_name: dict[str, int] = {}
        now = utcnow()
        for distinguished, name, folder_class, parent, _hidden in DEFAULT_FOLDERS:
            parent_id = by_name[parent] if parent else None
            folder_id = w.conn.execute(insert(t.folders).values(
                mailbox_id=mailbox_id, parent_id=parent_id, distinguished_id=distinguished, display_name=name,
                folder_class=folder_class, change_number=0, created=now, modified=now, total_count=0,
                associated_count=0, unread_count=0, child_folder_count=0, hidden=_hidden,
            )).inserted_primary_key[0]
            seq = w.journal(database_id, mailbox_id, "folder", folder_id, "created", parent_id)
            w.conn.execute(update(t.folders).where(t.folders.c.id == folder_id).values(change_number=seq))
            if parent_id is not None:
                w.conn.execute(update(t.folders).where(t.folders.c.id == parent_id)
                               .values(child_folder_count=t.folders.c.child_folder_count + 1))
            by_name[distinguished] = folder_id

    def _aliases(self, conn, mailbox_id: int) -> tuple[str, ...]:  # noqa: ANN001
        return tuple(conn.scalars(select(t.aliases.c.address).where(t.aliases.c.mailbox_id == mailbox_id)
                                  .order_by(t.aliases.c.address)))

    def mailboxes(self) -> list[Mailbox]:
        with reading(self.engine) as conn:
            rows = conn.execute(_mailbox_query().order_by(t.mailboxes.c.address)).all()
            alias_rows = conn.execute(select(t.aliases.c.mailbox_id, t.aliases.c.address)
                                      .order_by(t.aliases.c.address)).all()
        by_mailbox: dict[int, list[str]] = {}
        for mailbox_id, alias in alias_rows:
            by_mailbox.setdefault(mailbox_id, []).append(alias)
        return [_mailbox(r, tuple(by_mailbox.get(r[0], ()))) for r in rows]

    def mailbox_by_address(self, address: str) -> Mailbox | None:
        """The mailbox whose primary address or alias this is (case-insensitive)."""
        address = address.strip().lower()
        with reading(self.engine) as conn:
            row = conn.execute(_mailbox_query().where(t.mailboxes.c.address == address)).first()
            if row is None:
                owner = conn.scalar(select(t.aliases.c.mailbox_id).where(t.aliases.c.address == address))
                if owner is None:
                    return None
                row = conn.execute(_mailbox_query().where(t.mailboxes.c.id == owner)).first()
            return _mailbox(row, self._aliases(conn, row[0])) if row else None

    def mailbox_by_guid(self, guid: str) -> Mailbox | None:
        with reading(self.engine) as conn:
            row = conn.execute(_mailbox_query().where(t.mailboxes.c.guid == guid)).first()
            return _mailbox(row, self._aliases(conn, row[0])) if row else None

    def mailboxes_by_id(self, mailbox_ids: list[int]) -> dict[int, Mailbox]:
        if not mailbox_ids:
            return {}
        with reading(self.engine) as conn:
            rows = conn.execute(_mailbox_query().where(t.mailboxes.c.id.in_(mailbox_ids))).all()
        return {r[0]: _mailbox(r) for r in rows}

    def mailbox_by_sid(self, sid: str) -> Mailbox | None:
        guid = guid_of_sid(sid)
        return self.mailbox_by_guid(guid) if guid else None

    def search(self, prefix: str, limit: int) -> tuple[list[Mailbox], int]:
        """Ambiguous name resolution over what the directory keeps: mailboxes with a display-name
        word, primary address or alias starting with ``prefix`` (up to ``limit``, by display name),
        and how many there are in all."""
        pattern = _like_escape(prefix.strip().lower()) + "%"
        m = t.mailboxes.c
        alias_hit = exists(select(t.aliases.c.address).where(
            t.aliases.c.mailbox_id == m.id, t.aliases.c.address.ilike(pattern, escape="\\")))
        hit = or_(m.address.ilike(pattern, escape="\\"), m.display_name.ilike(pattern, escape="\\"),
                  m.display_name.ilike("% " + pattern, escape="\\"), alias_hit)
        with reading(self.engine) as conn:
            total = conn.scalar(select(func.count()).select_from(t.mailboxes).where(hit)) or 0
            rows = conn.execute(_mailbox_query().where(hit).order_by(m.display_name, m.address).limit(limit)).all()
            return [_mailbox(r, self._aliases(conn, r[0])) for r in rows], total

    def password_hash(self, address: str) -> tuple[Mailbox, str | None] | None:
        mailbox = self.mailbox_by_address(address)
        if mailbox is None:
            return None
        with reading(self.engine) as conn:
            return mailbox, conn.scalar(select(t.mailboxes.c.password_hash).where(t.mailboxes.c.id == mailbox.id))

    def set_password(self, address: str, password_hash: str) -> None:
        self._update_mailbox(address, password_hash=password_hash)

    def set_display_name(self, address: str, display_name: str) -> None:
        self._update_mailbox(address, display_name=display_name)

    def _update_mailbox(self, address: str, **values: str) -> None:
        mailbox = self.require(address)
        with self._writing() as w:
            w.conn.execute(update(t.mailboxes).where(t.mailboxes.c.id == mailbox.id).values(**values))

    # -- directory attributes ------------------------------------------------------------------
    def entry(self, mailbox: Mailbox) -> DirectoryEntry:
        """The directory attributes of ``mailbox``, its manager and the mailboxes it manages."""
        d = t.directory_attributes.c
        with reading(self.engine) as conn:
            row = conn.execute(select(d.attributes, d.manager_id).where(d.mailbox_id == mailbox.id)).first()
            reports = conn.execute(_mailbox_query().join(t.directory_attributes, d.mailbox_id == t.mailboxes.c.id)
                                   .where(d.manager_id == mailbox.id).order_by(t.mailboxes.c.display_name)).all()
        stored = dict(row[0]) if row else {}
        phones = stored.pop("PhoneNumbers", {})
        manager = self.mailboxes_by_id([row[1]]).get(row[1]) if row and row[1] is not None else None
        return DirectoryEntry(stored, phones, manager, tuple(_mailbox(r) for r in reports))

    def set_attributes(self, address: str, values: dict[str, str], phones: dict[str, str] | None = None,
                       manager: str | None = None) -> DirectoryEntry:
        """Change directory attributes (``values`` by ATTRIBUTES name, ``phones`` by PHONE_KEYS
        key, ``manager`` an address; an empty value removes one) and return the result."""
        mailbox = self.require(address)
        unknown = [k for k in values if k not in ATTRIBUTES] + [k for k in phones or {} if k not in PHONE_KEYS]
        if unknown:
            raise ValueError(f"not a directory attribute: {', '.join(unknown)}")
        manager_id: int | None = None
        if manager:
            boss = self.require(manager)
            if boss.id == mailbox.id:
                raise InvalidOperation(f"{mailbox.address} cannot be its own manager")
            manager_id = boss.id
        current = self.entry(mailbox)
        attributes = _merged(current.attributes, values)
        attributes["PhoneNumbers"] = _merged(current.phones, phones or {})
        if manager is None:
            manager_id = current.manager.id if current.manager else None
        with writing(self.engine) as w:
            w.replace_row(t.directory_attributes, mailbox.id, manager_id=manager_id, attributes=attributes)
        return self.entry(mailbox)

    def require(self, address: str) -> Mailbox:
        """``mailbox_by_address``, NotFound when there is no such mailbox."""
        mailbox = self.mailbox_by_address(address)
        if mailbox is None:
            raise NotFound(f"no mailbox {address}")
        return mailbox

    def add_alias(self, address: str, alias: str) -> None:
        mailbox = self.require(address)
        alias = normalize_address(alias)
        with self._writing() as w:
            domain = alias.split("@", 1)[1]
            if w.conn.scalar(select(t.domains.c.id).where(t.domains.c.name == domain)) is None:
                raise NotFound(f"domain {domain} is not an accepted domain here")
            if self.taken(w, alias):
                raise AlreadyExists(f"{alias} is already in use")
            w.conn.execute(insert(t.aliases).values(address=alias, mailbox_id=mailbox.id))

    def remove_alias(self, alias: str) -> None:
        with self._writing() as w:
            if not w.conn.execute(delete(t.aliases).where(t.aliases.c.address == alias.lower())).rowcount:
                raise NotFound(f"no alias {alias}")

    def remove_mailbox(self, address: str) -> None:
        mailbox = self.require(address)
        with self._writing() as w:
            w.conn.execute(delete(t.mailboxes).where(t.mailboxes.c.id == mailbox.id))

    # -- impersonation -----------------------------------------------------------------------
    def grant_impersonation(self, account: str, scope: str) -> Grant:
        """Give ``account`` the ApplicationImpersonation role over ``scope`` (syntax: store/scopes.py)."""
        holder = self.require(account)
        parsed = self._checked_scope(parse_scope(scope))
        created = utcnow()
        try:
            with writing(self.engine) as w:
                w.conn.execute(insert(t.impersonation_grants).values(
                    account_id=holder.id, scope_kind=parsed.kind, scope_value=parsed.value, created=created))
        except IntegrityError as exc:
            raise AlreadyExists(f"{holder.address} already has impersonation over {parsed}") from exc
        return Grant(holder.address, parsed, created)

    def _checked_scope(self, scope: Scope) -> Scope:
        """Catch typos at grant time: a domain must be accepted here, listed mailboxes must exist."""
        if scope.kind == "domain" and scope.value not in {d.name for d in self.domains()}:
            raise NotFound(f"domain {scope.value} is not an accepted domain here")
        if scope.kind == "mailboxes":
            for address in scope.value.split(","):
                self.require(address)
        return scope

    def revoke_impersonation(self, account: str, scope: str | None = None) -> int:
        """Take back one grant of ``account``, or every grant without ``scope``; returns how many went."""
        holder = self.require(account)
        g = t.impersonation_grants.c
        where = g.account_id == holder.id
        if scope is not None:
            parsed = parse_scope(scope)
            where = where & (g.scope_kind == parsed.kind) & (g.scope_value == parsed.value)
        with writing(self.engine) as w:
            removed = w.conn.execute(delete(t.impersonation_grants).where(where)).rowcount
        if not removed:
            raise NotFound(f"{holder.address} has no impersonation grant{f' over {scope}' if scope else ''}")
        return removed

    def impersonation_grants(self, account: Mailbox | None = None) -> list[Grant]:
        """Every grant (of ``account`` only, when given), by account address and scope."""
        g, m = t.impersonation_grants.c, t.mailboxes.c
        query = (select(m.address, g.scope_kind, g.scope_value, g.created)
                 .join(t.mailboxes, m.id == g.account_id).order_by(m.address, g.scope_kind, g.scope_value))
        if account is not None:
            query = query.where(g.account_id == account.id)
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        return [Grant(r[0], Scope(r[1], r[2]), r[3]) for r in rows]

    def impersonation_allowed(self, account: Mailbox, target: Mailbox) -> bool:
        """Whether a grant of ``account`` covers ``target`` now (scopes are evaluated per request)."""
        return any(grant.scope.covers(target) for grant in self.impersonation_grants(account))
