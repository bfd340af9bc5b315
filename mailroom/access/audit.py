"""The audit trail of access to mailboxes by anyone but their owner: impersonation, delegate access
(and, when configured, the owners' own actions).

A request collects what it touched in a ``Trail`` (passed explicitly with the request's context);
when the request is answered the trail is written to the store's audit log in one short
transaction, and each access is also one line on the ``mailroom.audit`` logger. A request by an
owner in their own mailbox collects nothing and writes nothing unless ``owner_too`` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mailroom.store import Store
from mailroom.store.model import AuditRecord, Mailbox, utcnow

from .identity import OWNER, Identity

log = logging.getLogger("mailroom.audit")
DENIED = "ErrorAccessDenied"


@dataclass(frozen=True, slots=True)
class Touch:
    """One folder or item of ``mailbox`` reached by ``right``; ``granted`` False if refused."""

    mailbox: str
    right: str
    folder_id: int | None
    item_id: int | None
    granted: bool


@dataclass
class Trail:
    """What one request reached, for the audit log."""

    identity: Identity
    client_ip: str = ""
    owner_too: bool = False
    touches: list[Touch] = field(default_factory=list)

    def wanted(self, right: str) -> bool:
        return right != OWNER or self.owner_too

    def note(self, mailbox: Mailbox, right: str, folder_id: int | None, item_id: int | None, granted: bool) -> None:
        if self.wanted(right):
            self.touches.append(Touch(mailbox.address, right, folder_id, item_id, granted))

    def recording(self) -> bool:
        """Whether the request has anything for the audit log (``records`` is not empty)."""
        return bool(self.touches) or self.wanted(self.identity.right)

    def records(self, operation: str, result: str) -> list[AuditRecord]:
        """The audit records of the request: each touch (refused ones with ErrorAccessDenied, the
        others with the request's ``result``), and one for the mailbox acted on when the request
        is not its owner's and touched none of its folders."""
        identity, now = self.identity, utcnow()
        touches = list(self.touches)
        if self.wanted(identity.right) and not any(t.mailbox == identity.mailbox.address for t in touches):
            touches.append(Touch(identity.mailbox.address, identity.right, None, None, True))
        return [AuditRecord(time=now, caller=identity.caller.address, mailbox=t.mailbox, right=t.right,
                            operation=operation, result=result if t.granted else DENIED, client_ip=self.client_ip,
                            folder_id=t.folder_id, item_id=t.item_id) for t in touches]


def write(store: Store, records: list[AuditRecord]) -> None:
    """Keep ``records`` in the audit log and write their log lines."""
    for r in records:
        log.info("caller=%s target=%s right=%s operation=%s result=%s", r.caller, r.mailbox, r.right, r.operation,
                 r.result)
    store.audit.append(records)
