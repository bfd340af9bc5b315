"""Per-mailbox settings kept as Exchange keeps them: in an associated (FAI) item of the mailbox root,
one item per item class, so a setting needs no table (and no migration) of its own."""

from __future__ import annotations

from mailroom.store import Store
from mailroom.store.model import Item, ItemChanges, Mailbox, NewItem
from mailroom.store.query import Compare, Prop


def find(store: Store, mailbox: Mailbox, item_class: str, folder_id: int | None = None) -> Item | None:
    """The ``item_class`` associated item of the folder (the mailbox root by default), if any."""
    if folder_id is None:
        folder_id = store.folders.distinguished(mailbox, "root").id
    found, _ = store.items.find(mailbox, folder_id, where=Compare(Prop("ItemClass"), "eq", item_class),
                                associated=True)
    return found[0] if found else None


def put(store: Store, mailbox: Mailbox, item_class: str, props: dict[str, object]) -> None:
    """Create the mailbox's ``item_class`` item with ``props``, or set them on the one it has."""
    props = {"ItemClass": item_class, "Subject": item_class, "IsAssociated": True, "IsRead": True, **props}
    item = find(store, mailbox, item_class)
    if item is None:
        root = store.folders.distinguished(mailbox, "root")
        store.items.create(mailbox, root.id, NewItem(props=props))
    else:
        store.items.update(mailbox, item.id, ItemChanges(set_props=props, keep_mime=True))
