"""Everything one EWS request carries: the store, the Identity, the requested version, the
caller's time zone and the transport to send through. Created per request and passed to the operation explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING

from mailroom.access.audit import Trail
from mailroom.access.identity import DELEGATE, Identity
from mailroom.access.permissions import Right
from mailroom.server import config
from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.transport.envelope import Submission

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
    notifications: bool = True  # False in a session that asked for none (mailroom/notify/optout.py)
    submit: Callable[[Submission], str] | None = None  # the transport's submit, callable from this thread
    trail: Trail | None = None  # what the request reached, for the audit log
    ticket: Ticket | None = None  # the caller's budget hold (None: not throttled, e.g. in-process calls)
    max_message_bytes: int = config.default("transport.max_message_bytes")  # the transport's limit (MailTips)
    _mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    rights: dict[int, Right] = field(default_factory=dict)  # the caller's rights by folder id, as read
    _private: dict[int, bool] = field(default_factory=dict)  # hides_private by mailbox id, as read

    @property
    def mailbox(self) -> Mailbox:
        return self.identity.mailbox

    def hides_private(self, mailbox: Mailbox) -> bool:
        """Whether ``mailbox``'s private items are hidden from the caller: only whoever acts as
        its owner and the delegates it gave ViewPrivateItems see them ([MS-OXODLGT] 2.2.2.2.6)."""
        if self.identity.right_over(mailbox) != DELEGATE:
            return False
        found = self._private.get(mailbox.id)
        if found is None:
            found = self._private[mailbox.id] = not self.store.permissions.sees_private(mailbox, self.mailbox)
        return found

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
