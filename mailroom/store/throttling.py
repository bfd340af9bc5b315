"""Throttling policies and which mailbox is governed by which (Set-ThrottlingPolicy,
Set-Mailbox -ThrottlingPolicy). Values are checked on the way in; a stored policy that no longer
reads as valid is skipped when resolving (Exchange falls back, it never fails the request)."""

from __future__ import annotations

import logging

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailroom.throttling.policy import GLOBAL, Policy, PolicyError, checked_values

from . import tables as t
from .directory import Directory
from .engine import Writer, reading, writing
from .errors import AlreadyExists, InvalidOperation, NotFound
from .model import utcnow

log = logging.getLogger(__name__)
_P = t.throttling_policies.c


class ThrottlingPolicies:
    def __init__(self, engine: Engine, directory: Directory) -> None:
        self.engine = engine
        self.directory = directory

    def add(self, name: str, values: dict[str, int | None], default: bool = False) -> Policy:
        name = _checked_name(name)
        values = checked_values(values)
        try:
            with writing(self.engine) as w:
                if default:
                    self._clear_default(w)
                w.conn.execute(insert(t.throttling_policies).values(name=name, is_default=default, params=values,
                                                                   created=utcnow()))
        except IntegrityError as exc:
            raise AlreadyExists(f"throttling policy {name} already exists") from exc
        return Policy(name, values, default)

    def update(self, name: str, values: dict[str, int | None], unset: tuple[str, ...] = (),
               default: bool | None = None) -> Policy:
        """Set ``values`` (None: unlimited), drop the ``unset`` ones (they inherit again), and make
        it the organization default (True) or not (False)."""
        values = checked_values(values)
        drop = set(checked_values(dict.fromkeys(unset)))
        with writing(self.engine) as w:
            row = w.conn.execute(select(_P.id, _P.params, _P.is_default).where(_P.name == name)).first()
            if row is None:
                raise NotFound(f"no throttling policy {name}")
            try:
                current = checked_values(row.params)
            except PolicyError:
                current = {}  # a corrupt policy is rewritten from what is given now
            merged = {k: v for k, v in {**current, **values}.items() if k not in drop}
            is_default = row.is_default if default is None else default
            if default:
                self._clear_default(w)
            w.conn.execute(update(t.throttling_policies).where(_P.id == row.id)
                           .values(params=merged, is_default=is_default))
        return Policy(name, merged, is_default)

    def remove(self, name: str) -> None:
        with writing(self.engine) as w:
            policy_id = w.conn.scalar(select(_P.id).where(_P.name == name))
            if policy_id is None:
                raise NotFound(f"no throttling policy {name}")
            users = w.conn.scalar(select(func.count()).where(t.throttling_assignments.c.policy_id == policy_id))
            if users:
                raise InvalidOperation(f"throttling policy {name} is assigned to {users} mailbox(es); "
                                       "unassign it first")
            w.conn.execute(delete(t.throttling_policies).where(_P.id == policy_id))

    def policies(self) -> list[tuple[Policy, int]]:
        """Every policy (corrupt ones with no values) and how many mailboxes it is assigned to."""
        a = t.throttling_assignments.c
        users = select(func.count()).where(a.policy_id == _P.id).scalar_subquery()
        with reading(self.engine) as conn:
            rows = conn.execute(select(_P.name, _P.params, _P.is_default, users).order_by(_P.name)).all()
        return [(_policy(r.name, r.params, r.is_default) or Policy(r.name, {}, r.is_default), r[3]) for r in rows]

    def assign(self, address: str, name: str) -> None:
        mailbox_id = self.directory.require(address).id
        with writing(self.engine) as w:
            policy_id = w.conn.scalar(select(_P.id).where(_P.name == name))
            if policy_id is None:
                raise NotFound(f"no throttling policy {name}")
            w.replace_row(t.throttling_assignments, mailbox_id, policy_id=policy_id)

    def unassign(self, address: str) -> None:
        mailbox_id = self.directory.require(address).id
        a = t.throttling_assignments
        with writing(self.engine) as w:
            if not w.conn.execute(delete(a).where(a.c.mailbox_id == mailbox_id)).rowcount:
                raise NotFound(f"{address} has no throttling policy of its own")

    def chain(self, mailbox_id: int) -> list[Policy]:
        """The policies governing a mailbox, most specific first: its own, then the organization
        default; corrupt ones are left out (logged), so the next in line applies."""
        a = t.throttling_assignments.c
        with reading(self.engine) as conn:
            own = conn.scalar(select(a.policy_id).where(a.mailbox_id == mailbox_id))
            rows = conn.execute(select(_P.id, _P.name, _P.params, _P.is_default)
                                .where((_P.id == own) | _P.is_default)).all()
        rows.sort(key=lambda r: r.id != own)
        found = (_policy(r.name, r.params, r.is_default) for r in rows)
        return [p for p in found if p is not None]

    @staticmethod
    def _clear_default(w: Writer) -> None:
        w.conn.execute(update(t.throttling_policies).where(_P.is_default).values(is_default=False))


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 64 or name.lower() == GLOBAL.lower():
        raise PolicyError(f"{name!r} cannot name a throttling policy ({GLOBAL} is the built-in one)")
    return name


def _policy(name: str, params: object, is_default: bool) -> Policy | None:
    try:
        return Policy(name, checked_values(params), bool(is_default))  # type: ignore[arg-type]
    except PolicyError as exc:
        log.warning("throttling policy %s is corrupt (%s); the next policy in line applies", name, exc)
        return None
