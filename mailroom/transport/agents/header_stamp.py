"""A header-stamping agent: sets configured headers on every message the transport accepts,
replacing any copy that came from outside (so a downstream filter can trust them).

Settings (``[agents.header-stamp]``): ``headers`` (a table of name = value; ``{internal_id}``
in a value is replaced by the queue's id for the message).
"""

from __future__ import annotations

from typing import Any, ClassVar

from . import MailItem, TransportAgent


class HeaderStampAgent(TransportAgent):
    name: ClassVar[str] = "header-stamp"
    priority: ClassVar[int] = 100

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        headers = settings.get("headers")
        if not isinstance(headers, dict) or not headers:
            raise ValueError("agents.header-stamp.headers must be a table of header names and values")
        self.headers = {str(k): str(v) for k, v in headers.items()}

    def on_submitted(self, item: MailItem) -> None:
        message = item.message
        for name, value in self.headers.items():
            del message[name]
            message[name] = value.replace("{internal_id}", item.internal_id)
