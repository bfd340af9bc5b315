"""Public distribution groups and room lists in the directory (New-DistributionGroup,
Add-DistributionGroupMember, New-DistributionGroup -RoomList). A member is a mailbox, another
group or an external address; groups may nest, loops included, so expansion remembers what it
has seen."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, Row, and_, delete, func, insert, or_, select

from . import tables as t
from .directory import Directory, normalize_address
from .engine import reading, writing
from .errors import AlreadyExists, InvalidOperation, NotFound
from .model import Group, GroupMember, Mailbox, utcnow
from .sqlquery import _like_escape

_GROUP_COLUMNS = (t.groups.c.id, t.groups.c.address, t.groups.c.display_name, t.groups.c.room_list)


def _group(row: Row) -> Group:
    return Group(id=row[0], address=row[1], display_name=row[2], room_list=bool(row[3]))


@dataclass
class Expansion:
    """A group's recipients after nested groups are expanded: each address once (members by display
    name, a nested group's where the group stands), and the addresses met more than once."""

    addresses: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # the nested groups expanded on the way


class Groups:
    def __init__(self, engine: Engine, directory: Directory) -> None:
        self.engine = engine
        self.directory = directory

    # -- groups ---------------------------------------------------------------------------------
    def add(self, address: str, display_name: str | None = None, room_list: bool = False) -> Group:
        address = normalize_address(address)
        domain = address.split("@", 1)[1]
        with writing(self.engine) as w:
            domain_id = w.conn.scalar(select(t.domains.c.id).where(t.domains.c.name == domain))
            if domain_id is None:
                raise NotFound(f"domain {domain} is not an accepted domain here (mailroom domain add)")
            if self.directory.taken(w, address):
                raise AlreadyExists(f"{address} is already in use")
            w.conn.execute(insert(t.groups).values(domain_id=domain_id, address=address, created=utcnow(),
                                                   display_name=display_name or address.split("@", 1)[0],
                                                   room_list=room_list))
        return self.require(address)

    def remove(self, address: str) -> None:
        group = self.require(address)
        with writing(self.engine) as w:
            w.conn.execute(delete(t.groups).where(t.groups.c.id == group.id))

    def by_address(self, address: str) -> Group | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(*_GROUP_COLUMNS).where(t.groups.c.address == address.strip().lower())).first()
        return _group(row) if row else None

    def require(self, address: str) -> Group:
        group = self.by_address(address)
        if group is None:
            raise NotFound(f"no group {address}")
        return group

    def list(self, room_lists_only: bool = False) -> list[Group]:
        query = select(*_GROUP_COLUMNS).order_by(t.groups.c.display_name, t.groups.c.address)
        if room_lists_only:
            query = query.where(t.groups.c.room_list.is_(True))
        with reading(self.engine) as conn:
            return [_group(r) for r in conn.execute(query).all()]

    def search(self, prefix: str, limit: int) -> tuple[list[Group], int]:
        """Groups with a display-name word or address starting with ``prefix`` (up to ``limit``, by
        display name), and how many there are in all: the groups' part of ambiguous name resolution."""
        pattern = _like_escape(prefix.strip().lower()) + "%"
        g = t.groups.c
        hit = or_(g.address.ilike(pattern, escape="\\"), g.display_name.ilike(pattern, escape="\\"),
                  g.display_name.ilike("% " + pattern, escape="\\"))
        with reading(self.engine) as conn:
            total = conn.scalar(select(func.count()).select_from(t.groups).where(hit)) or 0
            rows = conn.execute(select(*_GROUP_COLUMNS).where(hit).order_by(g.display_name, g.address)
                                .limit(limit)).all()
        return [_group(r) for r in rows], total

    # -- members --------------------------------------------------------------------------------
    def add_member(self, group_address: str, member: str) -> None:
        """Add a mailbox, a group or (outside the accepted domains) an external address."""
        group = self.require(group_address)
        values = self._member_values(group, member)
        with writing(self.engine) as w:
            if w.conn.scalar(select(func.count()).where(self._member_row(group, values))):
                raise AlreadyExists(f"{member} is already a member of {group.address}")
            w.conn.execute(insert(t.group_members).values(group_id=group.id, **values))

    def remove_member(self, group_address: str, member: str) -> None:
        group = self.require(group_address)
        values = self._member_values(group, member)
        with writing(self.engine) as w:
            if not w.conn.execute(delete(t.group_members).where(self._member_row(group, values))).rowcount:
                raise NotFound(f"{member} is not a member of {group.address}")

    def _member_values(self, group: Group, member: str) -> dict[str, object]:
        address = normalize_address(member)
        mailbox = self.directory.mailbox_by_address(address)
        if mailbox is not None:
            return {"mailbox_id": mailbox.id}
        nested = self.by_address(address)
        if nested is not None:
            if nested.id == group.id:
                raise InvalidOperation(f"{group.address} cannot be a member of itself")
            return {"member_group_id": nested.id}
        if self.directory.accepts(address.split("@", 1)[1]):
            raise NotFound(f"no mailbox or group {address}")
        return {"address": address}

    @staticmethod
    def _member_row(group: Group, values: dict[str, object]):  # noqa: ANN205 - a SQL condition
        gm = t.group_members.c
        column, value = next(iter(values.items()))
        return and_(gm.group_id == group.id, gm[column] == value)

    def members(self, group: Group) -> list[GroupMember]:
        """A group's direct members, by display name (external addresses show as themselves)."""
        gm = t.group_members.c
        nested = t.groups.alias("nested")
        with reading(self.engine) as conn:
            rows = conn.execute(select(gm.mailbox_id, gm.address, nested.c.id, nested.c.address,
                                       nested.c.display_name, nested.c.room_list)
                                .outerjoin(nested, nested.c.id == gm.member_group_id)
                                .where(gm.group_id == group.id).order_by(gm.id)).all()
        boxes = self.directory.mailboxes_by_id([r[0] for r in rows if r[0] is not None])
        found = []
        for mailbox_id, address, *group_row in rows:
            if mailbox_id is not None:
                box = boxes[mailbox_id]
                found.append(GroupMember(box.address, box.display_name, mailbox=box))
            elif group_row[0] is not None:
                inner = _group(group_row)
                found.append(GroupMember(inner.address, inner.display_name, group=inner))
            else:
                found.append(GroupMember(address, address))
        return sorted(found, key=lambda m: (m.display_name.lower(), m.address))

    def rooms(self, room_list: Group) -> list[Mailbox]:
        """The room mailboxes a room list holds (GetRooms)."""
        return [m.mailbox for m in self.members(room_list) if m.mailbox is not None and m.mailbox.kind == "room"]

    def expand(self, group: Group) -> Expansion:
        """Every recipient of ``group``, nested groups expanded depth first; a group met again (a
        loop, or nested twice) is not expanded again, an address met again is a duplicate."""
        expansion = Expansion()
        seen_groups = {group.id}
        seen = set()

        def walk(current: Group) -> None:
            for member in self.members(current):
                if member.group is not None:
                    if member.group.id not in seen_groups:
                        seen_groups.add(member.group.id)
                        expansion.groups.append(member.group.address)
                        walk(member.group)
                elif member.address in seen:
                    expansion.duplicates.append(member.address)
                else:
                    seen.add(member.address)
                    expansion.addresses.append(member.address)

        walk(group)
        return expansion
