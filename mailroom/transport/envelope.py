"""What every entry point hands to the transport: one message with its SMTP envelope.

SMTP receive (inbound and submission), the pickup directory, EWS sending and the DSN generator
all build a ``Submission`` and pass it to a ``Submitter``; nothing reaches a mailbox or another
server any other way.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

from .headers import MessageHeaders


@dataclass(frozen=True)
class Recipient:
    """An envelope recipient with its RFC 3461 options."""

    address: str
    notify: tuple[str, ...] = ()  # NOTIFY=SUCCESS,FAILURE,DELAY or NEVER; empty means the default (FAILURE)
    orcpt: str | None = None  # ORCPT=rfc822;addr, as given


@dataclass(frozen=True)
class Submission:
    """A message accepted from somewhere, before it is queued.

    ``source`` and ``connector`` are what the message tracking log records (Exchange's source
    names: SMTP, PICKUP, STOREDRIVER, DSN, AGENT); ``submitter`` is the authenticated identity's
    address for submission and EWS (None for anonymous inbound mail)."""

    mail_from: str  # the reverse path; "" for the null sender <>
    recipients: tuple[Recipient, ...]
    raw: bytes
    source: str
    connector: str
    client_ip: str = ""
    client_hostname: str = ""
    submitter: str | None = None
    envid: str | None = None  # RFC 3461 ENVID
    ret: str | None = None  # RFC 3461 RET=FULL|HDRS
    extra: dict[str, str] = field(default_factory=dict)  # e.g. the SMTP session's TLS/AUTH details for logs
    hold: str = ""  # a transport agent quarantined it: queue it suspended, with this reason
    headers: MessageHeaders | None = None  # raw's header fields, when the entry point read them already

    def with_content(self, raw: bytes) -> Submission:
        """This submission with the content a transport agent left (the headers read again if it changed)."""
        return self if raw == self.raw else replace(self, raw=raw, headers=None)


class SubmissionRefused(Exception):
    """The transport will not take the message now; ``reply`` is the SMTP reply to give
    (e.g. ``452 4.3.1 Insufficient system resources`` under back pressure)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Submitter(Protocol):
    async def submit(self, submission: Submission) -> str:
        """Queue ``submission`` durably and return its internal message id. Returns only after
        the message is committed to disk (the caller may then acknowledge it); raises
        ``SubmissionRefused`` when it is not taken."""
        ...
