"""A mailbox's notification opt-out: when an administrator turns notifications off for a mailbox,
Subscribe fails for it (every kind); nothing else changes. Kept in a configuration item of the
mailbox (mailroom/content/config_items.py), so it travels with the mailbox and needs no migration."""

from __future__ import annotations

from mailroom.content import config_items
from mailroom.store import Store
from mailroom.store.model import Mailbox

ITEM_CLASS = "IPM.Configuration.Mailroom.Notifications"
_PROP = "NotificationsEnabled"

SESSION_HEADER = "X-Mailroom-No-Notifications"
"""An HTTP request header; a request that carries it with a true value (1, true, yes) is a session
without notifications (Exchange's CONNECT_NO_NOTIFICATIONS): Subscribe fails for it."""


def enabled(store: Store, mailbox: Mailbox) -> bool:
    item = config_items.find(store, mailbox, ITEM_CLASS)
    return item is None or item.props.get(_PROP) is not False


def set_enabled(store: Store, mailbox: Mailbox, on: bool) -> None:
    config_items.put(store, mailbox, ITEM_CLASS, {_PROP: on})


def session_opted_out(value: str | None) -> bool:
    """Whether a SESSION_HEADER value asks for a session without notifications."""
    return (value or "").strip().lower() in ("1", "true", "yes")
