"""Remote delivery over SMTP with aiosmtplib: one outcome per recipient, never an exception.

``Outbound.deliver`` routes the domain (``routing.Router``), then tries each next-hop address in
turn until one takes the transaction: a refused connection, a bad greeting, a failed STARTTLS, a
4xx to MAIL FROM or a connection dropped before DATA moves on to the next address. Once a server
has answered the recipients, its replies are final for this attempt; retrying later is the queue's
business. One delivery uses one connection (no reuse yet).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import aiosmtplib
from aiosmtplib.email import quote_address

from mailroom.server.config import Config, ConfigError

from .envelope import Recipient
from .routing import Router, RoutingFailure, Target

CONNECT_TIMEOUT = 30.0  # connecting and the greeting
COMMAND_TIMEOUT = 300.0  # per command, RFC 5321 §4.5.3.2's minimum for MAIL, RCPT and the end of DATA
TLS_POLICIES = ("opportunistic", "required", "off")

_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class RecipientOutcome:
    address: str
    code: int  # SMTP reply code for this recipient; 0 when no server was reached
    enhanced: str  # RFC 3463 status, e.g. "2.0.0", "4.4.1", "5.1.1"
    text: str  # the server's reply text or our diagnosis (for DSN Diagnostic-Code / tracking)
    remote_host: str = ""  # "mx1.example.net [127.0.0.1]:2526" when reached
    dsn_passed: bool = False  # the server offered DSN and took NOTIFY/ORCPT: success notices are its business

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.enhanced.startswith("5")


@dataclass(frozen=True)
class _Result:
    """What one recipient got: a server reply (``code`` != 0) or our own diagnosis (``code`` 0)."""

    code: int
    enhanced: str
    text: str

    @classmethod
    def reply(cls, code: int, text: str) -> _Result:
        """A server's reply; its enhanced status is taken from the text (RFC 2034) or implied by the code."""
        text = " ".join(text.split("\n"))
        match = _ENHANCED.match(text)
        kind = str(code)[0]  # when the text's class contradicts the code, the code wins
        return cls(code, kind + match.group(0)[1:] if match else f"{kind}.0.0", text)


class _HostFailed(Exception):
    """This address did not take the transaction; the next one may."""

    def __init__(self, result: _Result) -> None:
        super().__init__(result.text)
        self.result = result


@dataclass
class _Message:
    mail_from: str
    recipients: list[Recipient]
    raw: bytes
    envid: str | None
    ret: str | None
    eight_bit: bool = field(init=False)
    needs_smtputf8: bool = field(init=False)  # non-ASCII addresses or header fields (RFC 6531 §3.2)

    def __post_init__(self) -> None:
        self.eight_bit = not self.raw.isascii()
        end = _HEADER_END.search(self.raw)
        header = self.raw[:end.start()] if end else self.raw
        addresses = [self.mail_from, *(recipient.address for recipient in self.recipients)]
        self.needs_smtputf8 = not header.isascii() or not all(address.isascii() for address in addresses)


class Outbound:
    def __init__(self, config: Config, hostname: str) -> None:
        self.hostname = hostname
        self.router = Router.from_config(config)
        self.tls = config["transport.outbound_tls"]
        if self.tls not in TLS_POLICIES:
            raise ConfigError(f"transport.outbound_tls must be one of {', '.join(TLS_POLICIES)}, not {self.tls!r}")
        self.connections = asyncio.Semaphore(config["transport.max_outbound_connections"])
        self.per_domain = config["transport.max_per_domain_connections"]
        self.domains: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}  # domain -> (semaphore, [users])
        self.tls_context = ssl.create_default_context()
        self.tls_context.check_hostname = False  # opportunistic TLS: encrypt, do not authenticate (RFC 7435)
        self.tls_context.verify_mode = ssl.CERT_NONE

    async def deliver(self, domain: str, mail_from: str, recipients: list[Recipient], raw: bytes,
                      envid: str | None = None, ret: str | None = None) -> list[RecipientOutcome]:
        """Route to ``domain`` (smart host if configured, else its MX hosts, else A/AAAA) and
        deliver; one outcome per recipient, in order. Never raises for network/DNS trouble:
        that is a transient (4.4.x) or permanent (5.1.2 / 5.1.10 null MX) outcome."""
        if not _quotable(mail_from):
            return _same(recipients, _Result(0, "5.1.7", f"bad sender address {mail_from!r}"))
        good = [recipient for recipient in recipients if _quotable(recipient.address)]
        outcomes = iter(await self._deliver(domain, _Message(mail_from, good, raw, envid, ret)) if good else [])
        return [next(outcomes) if _quotable(recipient.address) else
                RecipientOutcome(recipient.address, 0, "5.1.3", f"bad recipient address {recipient.address!r}")
                for recipient in recipients]

    async def _deliver(self, domain: str, message: _Message) -> list[RecipientOutcome]:
        try:
            targets = await self.router.route(domain)
        except RoutingFailure as failure:
            return _same(message.recipients, _Result(0, failure.enhanced, failure.text))
        async with self._slot(domain.lower()):
            return await self._try(targets, message)

    async def close(self) -> None:
        """Nothing is held between deliveries (one connection each); here for the service's shutdown."""

    @asynccontextmanager
    async def _slot(self, domain: str) -> AsyncIterator[None]:
        """One of the ``max_per_domain_connections`` for ``domain`` and of the ``max_outbound_connections``."""
        semaphore, users = self.domains.setdefault(domain, (asyncio.Semaphore(self.per_domain), [0]))
        users[0] += 1
        try:
            async with semaphore, self.connections:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self.domains[domain]

    async def _try(self, targets: list[Target], message: _Message) -> list[RecipientOutcome]:
        """Each address in turn until one takes the transaction; the last failure when none does."""
        attempts: list[str] = []
        failure = _Result(0, "4.4.1", "no address to try")
        for target in targets:
            try:
                return await self._session(target, message)
            except _HostFailed as failed:
                failure = failed.result
                attempts.append(f"{target}: {failure.text}")
        text = "; ".join(attempts) if len(attempts) > 1 else failure.text
        return _same(message.recipients, _Result(failure.code, failure.enhanced, text),
                     str(targets[-1]) if failure.code else "")

    async def _session(self, target: Target, message: _Message) -> list[RecipientOutcome]:
        smtp = aiosmtplib.SMTP(hostname=target.address, port=target.port, local_hostname=self.hostname,
                               timeout=COMMAND_TIMEOUT, start_tls=False)
        try:
            await self._open(smtp, target)
            refusal = self._cannot_carry(smtp, message)
            if refusal:
                return _same(message.recipients, refusal, str(target))
            return await self._transaction(smtp, target, message)
        finally:
            if smtp.is_connected:
                with suppress(aiosmtplib.SMTPException, OSError):
                    await asyncio.wait_for(smtp.quit(), CONNECT_TIMEOUT)
            smtp.close()

    async def _open(self, smtp: aiosmtplib.SMTP, target: Target) -> None:
        """Connect, greet (EHLO, else HELO) and STARTTLS as the policy says; ``_HostFailed`` if not."""
        try:
            await smtp.connect(timeout=CONNECT_TIMEOUT)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise _HostFailed(_transient(exc.code, exc.message)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _HostFailed(_Result(0, "4.4.1", f"cannot connect to {target}: {exc}")) from None
        try:
            await self._hello(smtp)
            if self.tls != "off" and smtp.supports_extension("starttls"):
                await self._starttls(smtp, target)
                await self._hello(smtp)
            elif self.tls == "required":
                raise _HostFailed(_Result(0, "4.7.4", f"TLS is required but {target} does not offer STARTTLS"))
        except aiosmtplib.SMTPResponseException as exc:
            raise _HostFailed(_transient(exc.code, exc.message)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _HostFailed(_Result(0, "4.4.2", f"connection to {target} lost: {exc}")) from None

    async def _hello(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.ehlo()
        except aiosmtplib.SMTPHeloError:
            await smtp.helo()

    async def _starttls(self, smtp: aiosmtplib.SMTP, target: Target) -> None:
        try:
            await smtp.starttls(server_hostname=None if target.host == target.address else target.host,
                                tls_context=self.tls_context)
        except ssl.SSLError as exc:
            raise _HostFailed(_Result(0, "4.7.5", f"TLS with {target} failed: {exc}")) from None

    def _cannot_carry(self, smtp: aiosmtplib.SMTP, message: _Message) -> _Result | None:
        """Why this server cannot take the message as it is, from its EHLO (SIZE, SMTPUTF8, 8BITMIME)."""
        limit = smtp.esmtp_extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < len(message.raw):
            return _Result(0, "5.3.4", f"message of {len(message.raw)} bytes exceeds the server's limit of "
                                       f"{limit} bytes (SIZE)")
        if message.needs_smtputf8 and not smtp.supports_extension("smtputf8"):
            return _Result(0, "5.6.7", "message needs SMTPUTF8 (non-ASCII addresses or header fields) "
                                       "and the server does not offer it")
        if message.eight_bit and not smtp.supports_extension("8bitmime"):
            return _Result(0, "5.6.3", "message has 8-bit content and the server does not offer 8BITMIME")
        return None

    async def _transaction(self, smtp: aiosmtplib.SMTP, target: Target,
                           message: _Message) -> list[RecipientOutcome]:
        encoding = "utf-8" if message.needs_smtputf8 else "ascii"
        dsn = smtp.supports_extension("dsn")
        try:
            await smtp.mail(message.mail_from, options=_mail_options(smtp, message, dsn), encoding=encoding)
        except aiosmtplib.SMTPSenderRefused as exc:
            if exc.code < 500:
                raise _HostFailed(_transient(exc.code, exc.message)) from None
            return _same(message.recipients, _Result.reply(exc.code, exc.message), str(target))
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _HostFailed(_Result(0, "4.4.2", f"connection to {target} lost: {exc}")) from None
        results: list[_Result | None] = []  # None: accepted, waiting for the DATA reply
        for recipient in message.recipients:
            options = _rcpt_options(recipient) if dsn else []
            try:
                await smtp.rcpt(recipient.address, options=options, encoding=encoding)
                results.append(None)
            except aiosmtplib.SMTPRecipientRefused as exc:
                if exc.code == 421:  # the server is closing the connection
                    raise _HostFailed(_transient(exc.code, exc.message)) from None
                results.append(_Result.reply(exc.code, exc.message))
            except (aiosmtplib.SMTPException, OSError) as exc:
                raise _HostFailed(_Result(0, "4.4.2", f"connection to {target} lost: {exc}")) from None
        data = await _data(smtp, target, message.raw) if None in results else None
        return [RecipientOutcome(recipient.address, final.code, final.enhanced, final.text, str(target), dsn)
                for recipient, result in zip(message.recipients, results, strict=True)
                if (final := result or data) is not None]


async def _data(smtp: aiosmtplib.SMTP, target: Target, raw: bytes) -> _Result:
    """The DATA reply, which applies to every accepted recipient. A connection lost here is not retried
    on another host: the message may have been taken."""
    try:
        reply = await smtp.data(raw)
    except aiosmtplib.SMTPResponseException as exc:
        return _Result.reply(exc.code, exc.message)
    except (aiosmtplib.SMTPException, OSError) as exc:
        return _Result(0, "4.4.2", f"connection to {target} lost during DATA: {exc}")
    return _Result.reply(reply.code, reply.message)


def _mail_options(smtp: aiosmtplib.SMTP, message: _Message, dsn: bool) -> list[str]:
    options = []
    if smtp.supports_extension("size"):
        options.append(f"SIZE={len(message.raw)}")
    if message.eight_bit and smtp.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if message.needs_smtputf8:
        options.append("SMTPUTF8")
    if dsn and message.ret:
        options.append(f"RET={message.ret.upper()}")
    if dsn and message.envid:
        options.append(f"ENVID={_xtext(message.envid)}")
    return options


def _rcpt_options(recipient: Recipient) -> list[str]:
    """RFC 3461 NOTIFY and ORCPT (the latter passed on as it was given, "rfc822;" plus xtext, when it
    is one word of printable ASCII)."""
    options = []
    if recipient.notify:
        options.append("NOTIFY=" + ",".join(value.upper() for value in recipient.notify))
    if recipient.orcpt and all("!" <= char <= "~" for char in recipient.orcpt):
        options.append(f"ORCPT={recipient.orcpt}")
    return options


def _xtext(value: str) -> str:
    """RFC 3461 §4 xtext: "+" followed by two hex digits for "+", "=" and anything outside ! to ~."""
    return "".join(f"+{ord(char):02X}" if char in "+=" or not "!" <= char <= "~" else char for char in value)


def _transient(code: int, text: str) -> _Result:
    """A reply that ends the attempt at this host (greeting, EHLO, MAIL FROM 4xx, 421): transient even
    when it is a 5xx, since another host, or this one later, may take the message."""
    result = _Result.reply(code, text)
    return result if code < 500 else _Result(0, "4.4.1", f"{code} {result.text}")


def _same(recipients: list[Recipient], result: _Result, remote_host: str = "") -> list[RecipientOutcome]:
    return [RecipientOutcome(recipient.address, result.code, result.enhanced, result.text, remote_host)
            for recipient in recipients]


def _quotable(address: str) -> bool:
    """Whether ``address`` goes on an SMTP command line as it is (aiosmtplib would rewrite or refuse
    one with line breaks, spaces, a display name and the like)."""
    try:
        return quote_address(address) == f"<{address}>"
    except ValueError:
        return False
