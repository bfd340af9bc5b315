"""The inbound SMTP listener (the port-25 role): mail for accepted domains, no AUTH, no relaying.

A message is submitted to the transport (the durable queue) and committed before its 250 goes
back (ARCHITECTURE rule 2).
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import re
from collections.abc import Callable
from concurrent.futures import Executor
from email.parser import BytesHeaderParser
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from mailroom.store import Store

from .envelope import Recipient, Submission, SubmissionRefused, Submitter

log = logging.getLogger(__name__)

_ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")
# RFC 3463 codes for aiosmtpd's own replies, which carry none.
_DEFAULT_ENHANCED = {500: b"5.5.2", 501: b"5.5.4", 502: b"5.5.1", 503: b"5.5.1", 504: b"5.5.4", 552: b"5.3.4",
                     555: b"5.5.4"}


class InboundSMTP(SMTP):
    """aiosmtpd's protocol, advertising ENHANCEDSTATUSCODES and so putting an RFC 3463 code on every
    2xx/4xx/5xx reply except the greeting and the HELO/EHLO answer (RFC 2034)."""

    async def push(self, status: AnyStr) -> None:
        line = status.encode("utf-8") if isinstance(status, str) else status
        await super().push(self._enhanced(line))

    def _enhanced(self, line: bytes) -> bytes:
        code, text = line[:3], line[4:]
        if (len(line) < 4 or line[3:4] != b" " or not code.isdigit() or code[:1] not in b"245" or code == b"220"
                or _ENHANCED.match(text) or line in (b"250 HELP", f"250 {self.hostname}".encode())):
            return line
        enhanced = _DEFAULT_ENHANCED.get(int(code), code[:1] + b".0.0")
        return b"%s %s %s" % (code, enhanced, text)


class InboundHandler:
    """aiosmtpd handler hooks. Store calls run in ``executor``, never on the event loop."""

    def __init__(self, store: Store, executor: Executor, max_recipients: int, hostname: str,
                 submitter: Submitter) -> None:
        self.store = store
        self.submitter = submitter
        self.executor = executor
        self.max_recipients = max_recipients
        self.hostname = hostname

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        refusal = await self._run(self._refusal, address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    def _refusal(self, address: str) -> str | None:
        """Why ``address`` is not ours to accept: another domain (relay) or no such mailbox or alias."""
        domain = address.rpartition("@")[2].lower()
        if domain not in {d.name.lower() for d in self.store.directory.domains()}:
            return "550 5.7.1 Unable to relay"
        if self.store.directory.mailbox_by_address(address) is None:
            return "550 5.1.1 User unknown"
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw, message_id = self._prepared(session, envelope)
        submission = Submission(mail_from=envelope.mail_from or "", raw=raw, source="SMTP", connector="inbound",
                                recipients=tuple(Recipient(a) for a in envelope.rcpt_tos),
                                client_ip=session.peer[0] if session.peer else "", client_hostname=session.host_name)
        try:
            await self.submitter.submit(submission)
        except SubmissionRefused as exc:
            return exc.reply
        except Exception:
            log.exception("queueing %s failed", message_id)
            return "451 4.3.0 Error queueing the message, try again later"
        return f"250 2.6.0 {message_id} Queued mail for delivery"

    def _prepared(self, session: Session, envelope: Envelope) -> tuple[bytes, str]:
        """The message with our Received: trace header (and a Message-ID if it had none)."""
        content = envelope.original_content or b""
        message_id = str(BytesHeaderParser(policy=email.policy.default).parsebytes(content).get("Message-ID", ""))
        added = b""
        if not message_id:
            message_id = email.utils.make_msgid(domain=self.hostname)
            added = f"Message-ID: {message_id}\r\n".encode()
        return self._received(session, envelope) + added + content, message_id

    def _received(self, session: Session, envelope: Envelope) -> bytes:
        ip = session.peer[0] if session.peer else "unknown"
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        if envelope.smtp_utf8:
            protocol = "UTF8SMTP"
        target = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
        value = (f"from {session.host_name} ([{ip}])\r\n\tby {self.hostname} (mailroom) with {protocol}{target};"
                 f" {email.utils.formatdate(localtime=False)}")
        return f"Received: {value}\r\n".encode()


async def start(store: Store, executor: Executor, host: str, port: int, *, max_recipients: int,
                max_message_bytes: int, hostname: str, submitter: Submitter) -> asyncio.Server:
    """Listen on ``host:port`` on the running event loop."""
    handler = InboundHandler(store, executor, max_recipients, hostname, submitter)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: InboundSMTP(handler, data_size_limit=max_message_bytes, enable_SMTPUTF8=True, hostname=hostname,
                            ident="mailroom ESMTP", loop=loop),
        host, port, reuse_address=True)
