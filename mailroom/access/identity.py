"""Who a request is from and whose mailbox it acts on. Passed explicitly to every piece of work;
there is no ambient current user."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.store.model import Mailbox

OWNER = "owner"
IMPERSONATION = "impersonation"
DELEGATE = "delegate"


@dataclass(frozen=True, slots=True)
class Identity:
    """``caller`` authenticated; ``mailbox`` is whose data the request acts on and ``right`` says
    by what right: "owner", or "impersonation" (an ApplicationImpersonation grant, checked by
    ``mailroom.ews.impersonation``; the caller then acts as the owner of ``mailbox``). Any other
    mailbox is reached by the right "delegate": the folder permissions its owner gave ``mailbox``
    decide (see ``right_over``)."""

    caller: Mailbox
    mailbox: Mailbox
    right: str = OWNER

    @classmethod
    def owner(cls, mailbox: Mailbox) -> Identity:
        return cls(caller=mailbox, mailbox=mailbox, right=OWNER)

    def may_open(self, mailbox: Mailbox) -> bool:
        """Whether this identity has the full rights of ``mailbox``'s owner."""
        return mailbox.id == self.mailbox.id

    def right_over(self, mailbox: Mailbox) -> str:
        """The right by which this identity reaches ``mailbox``: its own right for the mailbox it
        acts on, "delegate" for any other (folder permissions given to ``self.mailbox`` decide)."""
        return self.right if mailbox.id == self.mailbox.id else DELEGATE
