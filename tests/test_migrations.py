"""The Alembic migrations build exactly the schema tables.py describes, on both back ends, and
row ids (which EWS ids carry) are never handed out twice."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mailroom.store.model import NewItem
from mailroom.store.tables import metadata

from .conftest import new_domain, new_mailbox


def test_migrated_schema_matches_the_tables(store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_ids_of_deleted_rows_are_not_reused(store):
    mailbox = new_mailbox(store, new_domain(store))
    inbox = store.folders.distinguished(mailbox, "inbox")
    first = store.items.create(mailbox, inbox.id, NewItem(props={"Subject": "first"}))
    store.items.delete(mailbox, first.id)
    second = store.items.create(mailbox, inbox.id, NewItem(props={"Subject": "second"}))
    assert second.id > first.id
    folder = store.folders.create(mailbox, inbox.id, "Temporary", "IPF.Note")
    store.folders.delete(mailbox, folder.id, hard=True, trash_id=None)
    again = store.folders.create(mailbox, inbox.id, "Temporary", "IPF.Note")
    assert again.id > folder.id
