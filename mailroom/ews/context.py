"""Everything one EWS request carries: the store, the Identity, the requested version and the
caller's time zone. Created per request and passed to the operation explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

from mailroom.access.identity import Identity
from mailroom.store import Store
from mailroom.store.model import Mailbox

from . import versions

if TYPE_CHECKING:
    from mailroom.throttling.budget import Ticket

    from .streaming import Stream


@dataclass
class Context:
    store: Store
    identity: Identity
    version: str = versions.DEFAULT
    tz: tzinfo = UTC
    culture: str = "en-US"
    stream: Stream | None = None  # set by GetStreamingEvents: the answer is this open stream
    ticket: Ticket | None = None  # the caller's budget hold (None: not throttled, e.g. in-process calls)
    _mailboxes: dict[str, Mailbox] = field(default_factory=dict)

    @property
    def mailbox(self) -> Mailbox:
        return self.identity.mailbox

    def limit(self, parameter: str) -> int | None:
        """The caller's throttling policy value (None: unlimited, or not throttled)."""
        return self.ticket.policy[parameter] if self.ticket is not None else None

    def at_least(self, minimum: str) -> bool:
        return versions.at_least(self.version, minimum)

    def mailbox_by_guid(self, guid: str) -> Mailbox | None:
        if guid == self.mailbox.guid:
            return self.mailbox
        if guid not in self._mailboxes:
            found = self.store.directory.mailbox_by_guid(guid)
            if found is None:
                return None
            self._mailboxes[guid] = found
        return self._mailboxes[guid]
