"""Errors the store raises; the protocol edge maps each to its own reply."""


class StoreError(Exception):
    """Base of everything the store raises on purpose."""


class NotFound(StoreError):
    """The folder, item, attachment, domain or mailbox does not exist (or not in this mailbox)."""


class Conflict(StoreError):
    """The caller's change number is older than the stored one."""


class AlreadyExists(StoreError):
    """A folder of that name already exists under the parent, or a domain/mailbox/alias exists."""


class InvalidOperation(StoreError):
    """The operation is not allowed on this object (e.g. deleting a distinguished folder)."""
