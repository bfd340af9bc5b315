"""A mailbox's automatic-reply (Out of Office) settings. Kept as Exchange keeps them, in an
associated (FAI) item of the mailbox root, so they need no table of their own; the same item
remembers whom this OOF period has answered, and saving new settings starts a new period."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime

from mailroom.store import Store
from mailroom.store.errors import Conflict
from mailroom.store.model import Item, ItemChanges, Mailbox
from mailroom.store.query import Page

from . import config_items
from .recipients import holds_address

ITEM_CLASS = "IPM.Microsoft.OOF.UserOofSettings"
_CACHE = "oof"
_PREFIX = "Oof"  # props of the FAI item are the fields below, prefixed


@dataclass(frozen=True, slots=True)
class OofSettings:
    """Datetimes are UTC text (``YYYY-MM-DDTHH:MM:SSZ``); replies are HTML or text, as the user wrote them."""

    state: str = "Disabled"  # Disabled, Enabled or Scheduled
    external_audience: str = "All"  # None, Known or All
    start: str | None = None
    end: str | None = None
    internal_reply: str = ""
    internal_lang: str | None = None
    external_reply: str = ""
    external_lang: str | None = None
    answered: tuple[str, ...] = field(default=())  # lower-case senders replied to in this period

    def active(self, now: datetime) -> bool:
        if self.state == "Enabled":
            return True
        if self.state != "Scheduled" or not self.start or not self.end:
            return False
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")  # same fixed-width UTC text: compares in time order
        return self.start <= stamp < self.end


def reply_to(store: Store, mailbox: Mailbox, settings: OofSettings, sender: str) -> str | None:
    """The reply these settings give ``sender`` (whether or not they are active): the internal one
    to a sender in one of this server's domains; the external one to anyone else if
    ExternalAudience is All, or Known and the sender is in the mailbox's Contacts folder; else None."""
    if store.directory.accepts(sender.rpartition("@")[2]):
        return settings.internal_reply
    audience = settings.external_audience
    if audience == "All" or (audience == "Known" and _known(store, mailbox, sender)):
        return settings.external_reply
    return None


def _known(store: Store, mailbox: Mailbox, sender: str) -> bool:
    contacts = store.folders.distinguished(mailbox, "contacts")
    found, _ = store.items.find(mailbox, contacts.id, where=holds_address(sender), page=Page(0, 1))
    return bool(found)


def _props(settings: OofSettings) -> dict[str, object]:
    values = {f"{_PREFIX}{f.name}": getattr(settings, f.name) for f in fields(OofSettings)}
    values[f"{_PREFIX}answered"] = list(settings.answered)
    return values


def _settings(item: Item) -> OofSettings:
    stored = {f.name: item.props.get(f"{_PREFIX}{f.name}") for f in fields(OofSettings)}
    values = {name: value for name, value in stored.items() if value is not None}
    values["answered"] = tuple(values.get("answered", ()))
    return OofSettings(**values)


def _item(store: Store, mailbox: Mailbox) -> Item | None:
    return config_items.find(store, mailbox, ITEM_CLASS)


def load(store: Store, mailbox: Mailbox) -> OofSettings:
    item = _item(store, mailbox)
    return _settings(item) if item is not None else OofSettings()


def load_cached(store: Store, mailbox: Mailbox) -> OofSettings:
    """``load`` for local delivery (``config_items.load_cached``). Not for the sender list:
    ``claim_reply`` reads the item itself."""
    return config_items.load_cached(store, mailbox, _CACHE, load)


def save(store: Store, mailbox: Mailbox, settings: OofSettings) -> None:
    """Store new settings; they start a new OOF period (nobody answered yet)."""
    config_items.put(store, mailbox, ITEM_CLASS, _props(replace(settings, answered=())), cache=_CACHE)


def claim_reply(store: Store, mailbox: Mailbox, sender: str, now: datetime) -> OofSettings | None:
    """The active settings if ``sender`` has not been answered this period, recording that it now
    is; None otherwise. Checked against the item's change number, so two deliveries at once
    never both answer the same sender."""
    for _ in range(5):
        item = _item(store, mailbox)
        if item is None:
            return None
        settings = _settings(item)
        if not settings.active(now) or sender.lower() in settings.answered:
            return None
        answered = list(settings.answered) + [sender.lower()]
        try:
            store.items.update(mailbox, item.id, ItemChanges(set_props={f"{_PREFIX}answered": answered},
                                                             keep_mime=True), expected_change=item.change_number)
        except Conflict:
            continue
        return settings
    return None
