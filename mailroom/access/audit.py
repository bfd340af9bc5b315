"""The audit trail of access made as or on behalf of someone else (impersonation for now).

Each access is one line on the ``mailroom.audit`` logger; where it goes is the logging
configuration's choice. A searchable audit store does not exist yet.
"""

from __future__ import annotations

import logging

log = logging.getLogger("mailroom.audit")


def record(caller: str, target: str, right: str, operation: str, result: str) -> None:
    """One access by ``caller`` to ``target``'s mailbox under ``right``, and how it ended."""
    log.info("caller=%s target=%s right=%s operation=%s result=%s", caller, target, right, operation, result)
