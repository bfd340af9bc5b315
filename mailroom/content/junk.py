"""A mailbox's junk email lists (Exchange's Set-MailboxJunkEmailConfiguration
BlockedSendersAndDomains and TrustedSendersAndDomains): mail from a blocked sender or domain is
delivered to Junk Email unless the sender or its domain is trusted. Kept like the OOF settings,
in an associated item of the mailbox root; MarkAsJunk and `mailroom mailbox junk` change them."""

from __future__ import annotations

from dataclasses import dataclass

from mailroom.store import Store
from mailroom.store.model import Mailbox

from . import config_items

ITEM_CLASS = "IPM.Microsoft.JunkEmail.Lists"
_CACHE = "junk"


@dataclass(frozen=True, slots=True)
class JunkLists:
    """Lower-case addresses and domains."""

    blocked: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()

    def is_junk(self, sender: str) -> bool:
        """Whether mail from ``sender`` goes to Junk Email: it or its domain blocked, neither trusted."""
        sender = sender.lower()
        entries = (sender, sender.rpartition("@")[2])
        return any(e in self.blocked for e in entries) and not any(e in self.trusted for e in entries)


def load(store: Store, mailbox: Mailbox) -> JunkLists:
    item = config_items.find(store, mailbox, ITEM_CLASS)
    if item is None:
        return JunkLists()
    return JunkLists(tuple(item.props.get("JunkBlocked") or ()), tuple(item.props.get("JunkTrusted") or ()))


def load_cached(store: Store, mailbox: Mailbox) -> JunkLists:
    """``load`` for local delivery (``config_items.load_cached``)."""
    return config_items.load_cached(store, mailbox, _CACHE, load)


def change(store: Store, mailbox: Mailbox, block: tuple[str, ...] = (), unblock: tuple[str, ...] = (),
           trust: tuple[str, ...] = (), untrust: tuple[str, ...] = ()) -> JunkLists:
    """Add and remove addresses or domains (an entry blocked is no longer trusted, and the other
    way round); returns the lists as they are now."""
    current = load(store, mailbox)
    blocked = _changed(current.blocked, add=block, remove=(*unblock, *trust))
    trusted = _changed(current.trusted, add=trust, remove=(*untrust, *block))
    config_items.put(store, mailbox, ITEM_CLASS, {"JunkBlocked": list(blocked), "JunkTrusted": list(trusted)},
                     cache=_CACHE)
    return JunkLists(blocked, trusted)


def _changed(entries: tuple[str, ...], add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
    gone = {e.strip().lower() for e in remove}
    kept = [e for e in entries if e not in gone]
    return tuple(dict.fromkeys([*kept, *(e.strip().lower() for e in add if e.strip())]))

