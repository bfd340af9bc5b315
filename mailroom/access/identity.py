"""Who a request is from and whose mailbox it acts on. Passed explicitly to every piece of work;
there is no ambient current user."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.store.model import Mailbox


@dataclass(frozen=True, slots=True)
class Identity:
    """``caller`` authenticated; ``mailbox`` is whose data the request acts on and ``right`` says
    by what right: "owner", or "impersonation" (an ApplicationImpersonation grant, checked by
    ``mailroom.ews.impersonation``; the caller then acts as the owner of ``mailbox`` and nothing else)."""

    caller: Mailbox
    mailbox: Mailbox
    right: str = "owner"

    @classmethod
    def owner(cls, mailbox: Mailbox) -> Identity:
        return cls(caller=mailbox, mailbox=mailbox, right="owner")

    def may_open(self, mailbox: Mailbox) -> bool:
        return mailbox.id == self.mailbox.id
