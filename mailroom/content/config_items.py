"""Per-mailbox settings kept as Exchange keeps them: in an associated (FAI) item of the mailbox root,
one item per item class, so a setting needs no table (and no migration) of its own. (User
configuration objects are such items in any folder.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from mailroom.store import Store
from mailroom.store.cache import shared
from mailroom.store.model import Item, ItemChanges, Mailbox, NewItem
from mailroom.store.query import Compare, Prop

T = TypeVar("T")
CACHE_SECONDS = 10.0
"""How long local delivery trusts settings it read, when another process changed them (store/cache.py)."""


def find(store: Store, mailbox: Mailbox, item_class: str, folder_id: int | None = None) -> Item | None:
    """The ``item_class`` associated item of the folder (the mailbox root by default), if any."""
    found, _ = store.items.find(mailbox, _folder(store, mailbox, folder_id),
                                where=Compare(Prop("ItemClass"), "eq", item_class), associated=True)
    return found[0] if found else None


def create(store: Store, mailbox: Mailbox, item_class: str, props: dict[str, object],
           folder_id: int | None = None, created_by: int | None = None) -> Item:
    """A new ``item_class`` item with ``props`` in the folder (the mailbox root by default)."""
    return store.items.create(mailbox, _folder(store, mailbox, folder_id),
                              NewItem(props=_with_class(item_class, props), created_by=created_by))


def put(store: Store, mailbox: Mailbox, item_class: str, props: dict[str, object], cache: str | None = None) -> None:
    """Create the mailbox's ``item_class`` item with ``props``, or set them on the one it has; the
    mailbox's answer in the ``cache`` that ``load_cached`` reads it through is dropped."""
    try:
        item = find(store, mailbox, item_class)
        if item is None:
            create(store, mailbox, item_class, props)
        else:
            store.items.update(mailbox, item.id, ItemChanges(set_props=_with_class(item_class, props), keep_mime=True))
    finally:
        if cache is not None:
            shared(cache, store.engine, CACHE_SECONDS).forget(mailbox.id)


def load_cached(store: Store, mailbox: Mailbox, cache: str, load: Callable[[Store, Mailbox], T]) -> T:
    """``load(store, mailbox)`` for local delivery, which asks at every message, through the
    process's cache ``cache``: settings ``put`` in this process apply at once, those put by
    another within ``CACHE_SECONDS``."""
    found = shared(cache, store.engine, CACHE_SECONDS).get(mailbox.id, lambda: load(store, mailbox))
    assert found is not None  # a load always answers
    return found


def _folder(store: Store, mailbox: Mailbox, folder_id: int | None) -> int:
    return folder_id if folder_id is not None else store.folders.distinguished(mailbox, "root").id


def _with_class(item_class: str, props: dict[str, object]) -> dict[str, object]:
    return {"ItemClass": item_class, "Subject": item_class, "IsAssociated": True, "IsRead": True, **props}
