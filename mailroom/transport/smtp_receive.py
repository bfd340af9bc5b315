"""SMTP receive: the inbound listener (the port-25 role) and the submission listener (the port-587
role), one aiosmtpd protocol and handler with a switch between them.

- inbound: mail for accepted domains only, from anyone, no AUTH; relaying is refused (550 5.7.1)
  and an unknown local recipient is refused at RCPT (550 5.1.1).
- submission: STARTTLS, then AUTH PLAIN/LOGIN (the same argon2 check and credential cache as
  EWS) before MAIL; then any recipient, but only as oneself: the envelope sender and the From /
  Sender addresses must be the user's address or one of its aliases (Exchange's SendAsDenied).

Both hand each message to a ``Submitter`` and answer 250 only once ``submit()`` returned, i.e.
the message is durable (ARCHITECTURE rule 2), and record a RECEIVE event in the message tracking
log. Back pressure is asked at MAIL FROM. Transport agents (when configured) see the connection,
MAIL FROM, each RCPT TO and the end of data, in the worker pool; a ``Reject`` is that command's reply.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import re
import ssl
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from mailroom.access.auth import Authenticator
from mailroom.content.mime import ATOM
from mailroom.store import Store
from mailroom.store.model import Mailbox

from .agents import Agents, MailItem, Quarantine, Reject, SessionInfo
from .backpressure import BackPressure
from .envelope import Recipient, Submission, SubmissionRefused, Submitter
from .headers import MessageHeaders, read_headers
from .metrics import TransportMetrics
from .tracking import MessageTrackingLog, TrackingEvent

log = logging.getLogger(__name__)

_ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")
# RFC 3463 codes for aiosmtpd's own replies, which carry none.
_DEFAULT_ENHANCED = {500: b"5.5.2", 501: b"5.5.4", 502: b"5.5.1", 503: b"5.5.1", 504: b"5.5.4", 552: b"5.3.4",
                     555: b"5.5.4"}
# Exchange's SmtpResponse.SendAsDenied (on-premises); Exchange Online says 550 5.7.60 with the same text.
SEND_AS_DENIED = "550 5.7.1 Client does not have permissions to send as this sender"
_XTEXT = re.compile(r"^(?:[!-*,-<>-~]|\+[0-9A-F]{2})*$")  # RFC 3461 section 4
_NOTIFY = {"SUCCESS", "FAILURE", "DELAY"}
_END_OF_DATA = b"\r\n.\r\n"  # the CRLF ending the last line, the lone dot, its CRLF
_LONGEST_LINE = SMTP.line_length_limit - 2  # octets before the CRLF, as aiosmtpd counts them
# <local@domain> with a dot-atom local part and a host name, then the parameters (blanks before them skipped)
_PLAIN_PATH = re.compile(rf"[ \t]*<(?P<local>{ATOM}(?:\.{ATOM})*)@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>"
                         rf"[ \t]*(?P<rest>(?:[^ \t(].*)?)$", re.DOTALL)


@dataclass(frozen=True)
class Listener:
    """What distinguishes one listener: its name (the tracking log's connector-id) and role."""

    name: str
    submission: bool
    max_recipients: int
    hostname: str


class ReceiveEnvelope(Envelope):
    """aiosmtpd's envelope plus the RFC 3461 (DSN) parameters, kept as the client gave them."""

    def __init__(self) -> None:
        super().__init__()
        self.ret: str | None = None
        self.envid: str | None = None
        self.recipients: list[Recipient] = []


class _DsnError(ValueError):
    pass


def _dsn_params(arg: str, keyword: str, names: set[str]) -> tuple[str, dict[str, str]]:
    """Take the DSN parameters ``names`` out of a MAIL/RCPT argument (aiosmtpd does not know them
    and upper-cases what it parses); returns the rest of the argument and the values found."""
    if arg[:len(keyword)].upper() != keyword:
        return arg, {}
    words = arg[len(keyword):].split(" ")
    address = words[0] if words else ""
    kept, found = [], {}
    for word in words[1:]:
        name, _, value = word.partition("=")
        if name.upper() in names:
            if name.upper() in found or not value:
                raise _DsnError(f"501 5.5.4 Invalid {name.upper()} parameter")
            found[name.upper()] = value
        elif word:
            kept.append(word)
    return " ".join([keyword + address, *kept]), found


class ReceiveSMTP(SMTP):
    """aiosmtpd's protocol with ENHANCEDSTATUSCODES on every 2xx/4xx/5xx reply but the greeting
    and the EHLO answer (RFC 2034), the DSN parameters (RFC 3461), and AUTH verified off the
    event loop."""

    def __init__(self, handler: ReceiveHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.handler = handler
        self._open = False
        # aiosmtpd keeps these limits in one class-wide dict and grows it at every EHLO; keep our own.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)

    def _create_envelope(self) -> ReceiveEnvelope:
        return ReceiveEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if not self._open:  # not again after STARTTLS
            self._open = True
            self.handler.session_opened()

    async def _handle_client(self) -> None:
        """A connection an agent refuses gets its reply instead of the greeting, and is closed."""
        assert self.session is not None
        refusal = await self.handler.connected(self.session)
        if refusal:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if self._open:
            self._open = False
            self.handler.session_closed()

    async def smtp_EHLO(self, hostname: str) -> None:
        await super().smtp_EHLO(hostname)
        # SIZE, SMTPUTF8 and the DSN parameters (RFC 3461 section 4: ENVID and RET up to 120, ORCPT 500)
        self.command_size_limits["MAIL"] = SMTP.command_size_limit + 26 + 10 + 120
        self.command_size_limits["RCPT"] = SMTP.command_size_limit + 520

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

    async def smtp_MAIL(self, arg: str | None) -> None:
        try:
            rest, found = _dsn_params(arg or "", "FROM:", {"RET", "ENVID"})
            ret = found.get("RET", "").upper() or None
            if ret not in (None, "FULL", "HDRS"):
                raise _DsnError("501 5.5.4 Invalid RET parameter")
            envid = found.get("ENVID")
            if envid is not None and (len(envid) > 100 or not _XTEXT.match(envid)):
                raise _DsnError("501 5.5.4 Invalid ENVID parameter")
        except _DsnError as bad:
            await self.push(str(bad))
            return
        await super().smtp_MAIL(rest if arg is not None else None)
        envelope = self.envelope
        if isinstance(envelope, ReceiveEnvelope) and envelope.mail_from:
            envelope.ret, envelope.envid = ret, envid

    async def smtp_RCPT(self, arg: str | None) -> None:
        try:
            rest, found = _dsn_params(arg or "", "TO:", {"NOTIFY", "ORCPT"})
            notify = tuple(found["NOTIFY"].upper().split(",")) if "NOTIFY" in found else ()
            if notify and not (notify == ("NEVER",) or set(notify) <= _NOTIFY):
                raise _DsnError("501 5.5.4 Invalid NOTIFY parameter")
            orcpt = found.get("ORCPT")
            if orcpt is not None and (";" not in orcpt or not _XTEXT.match(orcpt.partition(";")[2])):
                raise _DsnError("501 5.5.4 Invalid ORCPT parameter")
        except _DsnError as bad:
            await self.push(str(bad))
            return
        envelope = self.envelope
        count = len(envelope.rcpt_tos) if envelope else 0
        await super().smtp_RCPT(rest if arg is not None else None)
        if isinstance(envelope, ReceiveEnvelope) and len(envelope.rcpt_tos) > count:
            envelope.recipients.append(Recipient(envelope.rcpt_tos[-1], notify, orcpt))

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (the same checks, replies and hook), with the message read in a few large
        pieces up to the lone dot instead of line by line (about 50 reads for 4 KiB)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None and not self._decode_data  # the listeners keep the bytes
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content = await self._read_data()
        except asyncio.CancelledError:  # the connection went during DATA
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        if isinstance(content, str):  # a refusal, once the whole message was read
            await self.push(content)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytes | str:
        """The message up to the lone dot, dot-stuffing undone (RFC 5321 section 4.5.2), or the
        reply refusing it: a line over aiosmtpd's line length limit, more than ``data_size_limit``
        octets (counted before the dot-stuffing is undone, as aiosmtpd counts them). Reads with
        ``readuntil`` for the end-of-data sequence; where what was read so far ends with the start
        of that sequence (a message's first line is preceded by one), the rest of it is read
        exactly, so a terminator straddling two reads is found and nothing after it is read."""
        limit = self.data_size_limit
        parts: list[bytes] = []
        size = 0
        tail = b"\r\n"  # the last bytes read (the message starts as if after a CRLF)
        refusal: str | None = None  # once over the size limit: the rest is read, not kept
        while True:
            started = next((n for n in range(len(_END_OF_DATA) - 1, 0, -1) if tail.endswith(_END_OF_DATA[:n])), 0)
            try:
                if started:
                    part = await self._reader.readexactly(len(_END_OF_DATA) - started)
                    done = part == _END_OF_DATA[started:]
                else:
                    part = await self._reader.readuntil(_END_OF_DATA)
                    done = True
            except asyncio.LimitOverrunError as overrun:  # over the reader's limit: what can be taken
                part = await self._reader.readexactly(overrun.consumed)
                done = False
            tail = (tail + part)[-len(_END_OF_DATA):]
            size += len(part)
            if refusal is None:
                parts.append(part)
                if limit and size - 3 > limit:  # the lone dot and its CRLF are not data
                    refusal = ("500 Line too long (see RFC5321 4.5.3.1.6)" if _too_long(b"".join(parts))
                               else "552 Error: Too much mail data")
                    parts.clear()
            if done:
                break
        if refusal is not None:
            return refusal
        data = b"\r\n" + b"".join(parts)[:-3]  # the lone dot and its CRLF go; so does the leading CRLF, below
        if _too_long(data):
            return "500 Line too long (see RFC5321 4.5.3.1.6)"
        return data.replace(b"\r\n.", b"\r\n")[2:]

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's address parsing (the email package's RFC 5322 parser, and a class made at
        every call) for anything but the common ``<dot-atom@domain>``, read here as it reads it."""
        plain = _PLAIN_PATH.match(arg)
        if plain is None or (self.local_part_limit and len(plain["local"]) > self.local_part_limit):
            return super()._getaddr(arg)
        return f"{plain['local']}@{plain['domain']}", plain["rest"]

    async def smtp_AUTH(self, arg: str) -> None:
        if not self.handler.listener.submission:  # the inbound role offers no mechanism (as Exchange's)
            await self.push("504 5.7.4 Unrecognized authentication type")
            return
        await super().smtp_AUTH(arg)

    def _authenticate(self, mechanism: str, auth_data: Any) -> AuthResult:
        """aiosmtpd calls this synchronously once it has decoded the credentials; hand them back,
        so ``_verified`` can check them off the event loop (argon2 takes a while)."""
        return AuthResult(success=True, auth_data=auth_data)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verified(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._verified(await super().auth_LOGIN(_, args))

    async def _verified(self, decoded: AuthResult) -> AuthResult:
        if not decoded.success or not isinstance(decoded.auth_data, LoginPassword):
            return decoded
        login, password = decoded.auth_data
        mailbox = await self.handler.verify(login.decode("utf-8", "replace"), password.decode("utf-8", "replace"))
        if mailbox is None:
            return AuthResult(success=False, handled=False)  # 535 5.7.8 Authentication credentials invalid
        return AuthResult(success=True, auth_data=mailbox)


class ReceiveHandler:
    """aiosmtpd handler hooks shared by both listeners. Store calls run in ``executor``."""

    def __init__(self, listener: Listener, *, store: Store, executor: Executor, submitter: Submitter,
                 auth: Authenticator, backpressure: BackPressure, tracking: MessageTrackingLog,
                 metrics: TransportMetrics, agents: Agents | None = None) -> None:
        self.listener = listener
        self.store = store
        self.executor = executor
        self.submitter = submitter
        self.auth = auth
        self.backpressure = backpressure
        self.tracking = tracking
        self.metrics = metrics
        self.agents = agents

    def session_opened(self) -> None:
        self.metrics.smtp_sessions.labels(self.listener.name).inc()
        self.metrics.smtp_sessions_active.labels(self.listener.name).inc()

    def session_closed(self) -> None:
        self.metrics.smtp_sessions_active.labels(self.listener.name).dec()

    async def _fire(self, event: str, *args: Any) -> str | None:
        """Run an agent event in the worker pool; the reply of a ``Reject``, if one refused."""
        assert self.agents is not None
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, partial(self.agents.fire, event, *args))
        except Reject as refused:
            return refused.reply
        return None

    def _session_info(self, session: Session) -> SessionInfo:
        mailbox = session.auth_data
        return SessionInfo(self.listener.name, session.peer[0] if session.peer else "", session.host_name or "",
                           mailbox.address if isinstance(mailbox, Mailbox) else None)

    async def connected(self, session: Session) -> str | None:
        """The reply refusing a new connection, when an agent refuses it."""
        return await self._fire("on_connect", self._session_info(session)) if self.agents else None

    async def verify(self, username: str, password: str) -> Mailbox | None:
        cached = self.auth.cache.get(username, password)
        if cached is not None:
            return cached
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.auth.verify, username, password)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1] if self.listener.submission or not r.startswith("250-AUTH")]
        return [*kept, "250-PIPELINING", "250-DSN", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        refusal = self.backpressure.refusal(authenticated=bool(session.authenticated))
        if refusal:
            return refusal
        if self.listener.submission and not _own(session.auth_data, _reverse_path(address)):
            return SEND_AS_DENIED
        if self.agents and (refused := await self._fire("on_mail_from", self._session_info(session),
                                                         _reverse_path(address))):
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.listener.max_recipients:
            return "452 4.5.3 Too many recipients"
        if not self.listener.submission and not self.store.directory.known_recipient(address):
            refusal = await asyncio.get_running_loop().run_in_executor(self.executor, self._refusal, address)
            if refusal:
                return refusal
        if self.agents and (refused := await self._fire("on_rcpt_to", self._session_info(session), address)):
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    def _refusal(self, address: str) -> str | None:
        """Why ``address`` is not ours to accept: another domain (relay) or no such mailbox, alias or group."""
        if not self.store.directory.accepts(address.rpartition("@")[2]):
            return "550 5.7.1 Unable to relay"
        if self.store.directory.lookup(address) is None and self.store.groups.by_address(address) is None:
            return "550 5.1.1 User unknown"
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope, ReceiveEnvelope)
        content = envelope.original_content or b""
        headers = read_headers(content)
        if self.listener.submission and not _sends_as_self(session.auth_data, headers):
            self.metrics.messages_refused.labels(self.listener.name).inc()
            return SEND_AS_DENIED
        message_id = headers.message_id
        added = b""
        if not message_id:
            message_id = email.utils.make_msgid(domain=self.listener.hostname)
            added = f"Message-ID: {message_id}\r\n".encode()
        prefix = self._received(server, session, envelope) + added
        headers = MessageHeaders(read_headers(prefix).fields + headers.fields)
        submission = self._submission(server, session, envelope, prefix + content, headers)
        if self.agents:
            item = MailItem(submission.mail_from, list(submission.recipients), submission.raw)
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self.executor, partial(self._end_of_data, self._session_info(session), item))
            except Reject as refused:
                self.metrics.messages_refused.labels(self.listener.name).inc()
                return refused.reply
            except Quarantine as held:
                submission = replace(submission, hold=held.description)
            submission = replace(submission.with_content(item.raw), recipients=tuple(item.recipients))
        try:
            internal_id = await self.submitter.submit(submission)
        except SubmissionRefused as refused:
            self.metrics.messages_refused.labels(self.listener.name).inc()
            return refused.reply
        except Exception:
            log.exception("submission of %s failed", message_id)
            return "451 4.3.0 Temporary failure, try again later"
        self.metrics.messages_received.labels(self.listener.name).inc()
        self.tracking.record(self._event(server, submission, headers, message_id, internal_id))
        log.debug("%s from %s accepted on %s as %s", message_id, submission.mail_from or "<>", self.listener.name,
                  internal_id)
        return (f"250 2.6.0 {message_id} [InternalId={internal_id}, Hostname={self.listener.hostname}] "
                "Queued mail for delivery")

    def _end_of_data(self, session: SessionInfo, item: MailItem) -> None:
        assert self.agents is not None
        try:
            self.agents.fire("on_end_of_data", session, item)
        finally:
            item.content()  # the changes, written back to item.raw

    def _submission(self, server: SMTP, session: Session, envelope: ReceiveEnvelope, raw: bytes,
                    headers: MessageHeaders) -> Submission:
        ip = session.peer[0] if session.peer else ""
        submitter = session.auth_data.address if isinstance(session.auth_data, Mailbox) else None
        extra = {"helo": session.host_name or ""}
        if session.ssl:
            cipher = session.ssl.get("cipher")
            extra["tls"] = str(cipher[1] if isinstance(cipher, tuple) else cipher)
        return Submission(mail_from=_reverse_path(envelope.mail_from or ""), recipients=tuple(envelope.recipients),
                          raw=raw, source="SMTP", connector=self.listener.name, client_ip=ip,
                          client_hostname=session.host_name or "", submitter=submitter, envid=envelope.envid,
                          ret=envelope.ret, extra=extra, headers=headers)

    def _event(self, server: SMTP, submission: Submission, headers: MessageHeaders, message_id: str,
               internal_id: str) -> TrackingEvent:
        local = server.transport.get_extra_info("sockname") if server.transport else None
        return TrackingEvent(
            event_id="RECEIVE", source="SMTP", internal_message_id=internal_id, message_id=message_id,
            recipient_address=[r.address for r in submission.recipients], total_bytes=len(submission.raw),
            recipient_count=len(submission.recipients), message_subject=headers.subject,
            sender_address=headers.sender or submission.mail_from, return_path=submission.mail_from or "<>",
            directionality="Originating" if submission.submitter else "Incoming", client_ip=submission.client_ip,
            client_hostname=submission.client_hostname, server_ip=local[0] if local else "",
            server_hostname=self.listener.hostname, connector_id=self.listener.name)

    def _received(self, server: SMTP, session: Session, envelope: ReceiveEnvelope) -> bytes:
        """Our Received: trace header, with RFC 3848 / RFC 6531 protocol names (ESMTPSA, UTF8SMTPS...)."""
        ip = session.peer[0] if session.peer else "unknown"
        protocol = ("UTF8SMTP" if envelope.smtp_utf8 else "ESMTP" if session.extended_smtp else "SMTP")
        suffix = ("S" if session.ssl else "") + ("A" if session.authenticated else "")
        if suffix and protocol == "SMTP":
            protocol = "ESMTP"
        target = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
        value = (f"from {session.host_name} ([{ip}])\r\n\tby {self.listener.hostname} (mailroom) with "
                 f"{protocol}{suffix}{target}; {email.utils.formatdate(localtime=False)}")
        return f"Received: {value}\r\n".encode()


def _too_long(data: bytes) -> bool:
    """Whether a line of ``data`` (CRLF-separated, as SMTP counts lines) is over the line length limit."""
    return max(map(len, data.split(b"\r\n"))) > _LONGEST_LINE


def _reverse_path(address: str) -> str:
    return "" if address == "<>" else address


def _own(mailbox: object, address: str) -> bool:
    """Whether ``address`` is the authenticated mailbox's own (its address or an alias)."""
    if not isinstance(mailbox, Mailbox) or not address:
        return False
    return address.lower() in {mailbox.address.lower(), *(a.lower() for a in mailbox.aliases)}


def _sends_as_self(mailbox: object, headers: MessageHeaders) -> bool:
    """Every From: and Sender: address is the user's own, and there is at least one."""
    addresses = headers.addresses("From") + headers.addresses("Sender")
    return bool(addresses) and all(_own(mailbox, a) for a in addresses)


async def start(handler: ReceiveHandler, host: str, port: int, *, max_message_bytes: int,
                tls: ssl.SSLContext | None) -> asyncio.Server:
    """Listen on ``host:port`` on the running event loop; STARTTLS is offered when ``tls`` is given,
    and AUTH (submission only) is offered and accepted only after it."""
    loop = asyncio.get_running_loop()
    submission = handler.listener.submission
    return await loop.create_server(
        lambda: ReceiveSMTP(handler, data_size_limit=max_message_bytes, enable_SMTPUTF8=True,
                            hostname=handler.listener.hostname, ident="mailroom ESMTP", tls_context=tls,
                            auth_required=submission, auth_require_tls=True,
                            auth_exclude_mechanism=None if submission else ["LOGIN", "PLAIN"], loop=loop),
        host, port, reuse_address=True)
