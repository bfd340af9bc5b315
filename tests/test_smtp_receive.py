"""The receive handler underneath the server, with aiosmtplib: what it hands to the Submitter, how
it passes a refusal on, and back pressure at MAIL FROM driven by a queue length we control."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiosmtplib

from mailroom.access.auth import Authenticator
from mailroom.store import Store
from mailroom.transport import smtp_receive
from mailroom.transport.backpressure import BackPressure, Level, Resource, Thresholds
from mailroom.transport.envelope import Recipient, Submission, SubmissionRefused
from mailroom.transport.headers import read_headers
from mailroom.transport.metrics import TransportMetrics
from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import new_domain, new_mailbox
from .test_smtp_inbound import _message


class Recording:
    """A Submitter that keeps what it is given, or refuses with ``refusal``."""

    def __init__(self, refusal: str | None = None) -> None:
        self.refusal = refusal
        self.submissions: list[Submission] = []

    async def submit(self, submission: Submission) -> str:
        if self.refusal:
            raise SubmissionRefused(self.refusal)
        self.submissions.append(submission)
        return f"q{len(self.submissions)}"


def _run(store: Store, tmp_path: Path, submitter: Recording, pressure: BackPressure,
         session: Callable[[aiosmtplib.SMTP], Coroutine[Any, Any, None]]) -> MessageTrackingLog:
    """Start an inbound listener on loopback, run ``session`` against it with a connected client."""
    tracking = MessageTrackingLog(tmp_path / "tracking")

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            handler = smtp_receive.ReceiveHandler(
                smtp_receive.Listener("inbound", False, 10, "mx.test.example"), store=store, executor=pool,
                submitter=submitter, auth=Authenticator(store), backpressure=pressure, tracking=tracking,
                metrics=pressure.metrics or TransportMetrics())
            server = await smtp_receive.start(handler, "127.0.0.1", 0, max_message_bytes=100_000, tls=None)
            port = server.sockets[0].getsockname()[1]
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30,
                                    local_hostname="client.example.org")
            await client.connect()
            await client.ehlo()
            try:
                await session(client)
            finally:
                await client.quit()
                server.close()

    asyncio.run(main())
    tracking.close()
    return tracking


def _quiet(metrics: TransportMetrics | None = None) -> BackPressure:
    return BackPressure([], metrics)


async def _cmd(client: aiosmtplib.SMTP, line: str) -> tuple[int, str]:
    verb, _, arg = line.partition(" ")
    reply = await client.execute_command(verb.encode(), arg.encode())
    return reply.code, reply.message


def test_the_envelope_and_dsn_parameters_reach_the_submitter(store: Store, tmp_path: Path) -> None:
    alice = new_mailbox(store, new_domain(store), "alice")
    submitter = Recording()
    msg = _message(alice.address)

    async def session(client: aiosmtplib.SMTP) -> None:
        assert await _cmd(client, "MAIL FROM:<s@elsewhere.example> RET=hdrs ENVID=Abc+2Bdef") == (
            250, "2.1.0 Sender OK")
        assert (await _cmd(client, f"RCPT TO:<{alice.address}> NOTIFY=success,DELAY "
                                   f"ORCPT=rfc822;Alice@Example.ORG"))[0] == 250
        reply = await client.data(msg.as_bytes())
        assert reply.code == 250 and "[InternalId=q1, Hostname=mx.test.example]" in reply.message

    tracking = _run(store, tmp_path, submitter, _quiet(), session)
    (sub,) = submitter.submissions
    assert (sub.mail_from, sub.envid, sub.ret) == ("s@elsewhere.example", "Abc+2Bdef", "HDRS")  # ENVID as given
    assert sub.recipients == (Recipient(alice.address, ("SUCCESS", "DELAY"), "rfc822;Alice@Example.ORG"),)
    assert (sub.source, sub.connector, sub.client_ip, sub.client_hostname) == ("SMTP", "inbound", "127.0.0.1",
                                                                               "client.example.org")
    assert sub.submitter is None and sub.raw.startswith(b"Received: from client.example.org ([127.0.0.1])")
    assert sub.raw.endswith(msg.as_bytes())
    (event,) = tracking.search(TrackingQuery())
    assert (event.event_id, event.internal_message_id, event.message_id) == ("RECEIVE", "q1", msg["Message-ID"])


def test_a_refusal_from_the_submitter_is_the_reply_and_nothing_is_tracked(store: Store, tmp_path: Path) -> None:
    alice = new_mailbox(store, new_domain(store), "alice")

    submitter = Recording(refusal="554 5.6.0 Refused by policy")

    async def with_data(client: aiosmtplib.SMTP) -> None:
        await client.mail("s@elsewhere.example")
        await client.rcpt(alice.address)
        try:
            await client.data(_message(alice.address).as_bytes())
        except aiosmtplib.SMTPDataError as refused:
            assert (refused.code, refused.message) == (554, "5.6.0 Refused by policy")
        else:
            raise AssertionError("the refusal was not passed on")

    tracking = _run(store, tmp_path, submitter, _quiet(), with_data)
    assert submitter.submissions == [] and tracking.search(TrackingQuery()) == []


def test_back_pressure_refuses_at_mail_from_and_recovers(store: Store, tmp_path: Path) -> None:
    alice = new_mailbox(store, new_domain(store), "alice")
    length = [0]
    metrics = TransportMetrics()
    pressure = BackPressure([Resource("QueueLength[SubmissionQueue]", lambda: length[0],
                                      Thresholds(low_to_medium=10, medium_to_high=20, high_to_medium=15,
                                                 medium_to_low=5))], metrics)
    submitter = Recording()

    def level_at(value: int) -> Level:
        length[0] = value
        return pressure.meter()

    async def session(client: aiosmtplib.SMTP) -> None:
        assert level_at(12) == Level.MEDIUM
        assert await _cmd(client, "MAIL FROM:<s@elsewhere.example>") == (452, "4.3.1 Insufficient system resources")
        assert pressure.refusal(authenticated=True) is None  # Medium lets authenticated submission through
        assert [level_at(v) for v in (17, 25, 17, 12, 7, 3)] == [
            Level.MEDIUM, Level.HIGH, Level.HIGH, Level.MEDIUM, Level.MEDIUM, Level.NORMAL]  # hysteresis both ways
        assert metrics.registry.get_sample_value("mailroom_backpressure_changes_total", {"direction": "increased"}) == 2
        assert await _cmd(client, "MAIL FROM:<s@elsewhere.example>") == (250, "2.1.0 Sender OK")
        await client.rcpt(alice.address)
        assert (await client.data(_message(alice.address).as_bytes())).code == 250

    _run(store, tmp_path, submitter, pressure, session)
    assert len(submitter.submissions) == 1
    assert metrics.registry.get_sample_value("mailroom_backpressure_level", {"resource": "overall"}) == 0
    assert metrics.registry.get_sample_value("mailroom_messages_received_total", {"listener": "inbound"}) == 1
    assert metrics.registry.get_sample_value("mailroom_smtp_sessions_total", {"listener": "inbound"}) == 1


def test_the_headers_read_on_arrival_travel_with_the_message(store: Store, tmp_path: Path) -> None:
    """The listener reads the header block once; what it hands on is what reading the queued bytes
    gives (the added Received: and Message-ID: included), and the tracking record decodes it."""
    alice = new_mailbox(store, new_domain(store), "alice")
    submitter = Recording()
    raw = (b'From: "Doe, Jane" <jane@elsewhere.example>\r\nSender: =?utf-8?q?S=C3=A9c?= <sec@elsewhere.example>\r\n'
           b"To: " + alice.address.encode() + b"\r\nSubject: =?utf-8?q?Caf=C3=A9?= and\r\n a folded line\r\n"
           b"\r\nbody\r\n")
    replies = []

    async def session(client: aiosmtplib.SMTP) -> None:
        replies.append(await client.sendmail("jane@elsewhere.example", [alice.address], raw))

    tracking = _run(store, tmp_path, submitter, _quiet(), session)
    (sub,) = submitter.submissions
    assert sub.headers is not None and sub.headers.fields == read_headers(sub.raw).fields
    message_id = sub.headers.message_id
    assert message_id.endswith("@mx.test.example>") and f"Message-ID: {message_id}\r\n".encode() in sub.raw
    assert message_id in replies[0][1]
    assert sub.headers.subject == "Café and a folded line" and sub.headers.sender == "sec@elsewhere.example"
    (event,) = tracking.search(TrackingQuery())
    assert (event.message_id, event.message_subject, event.sender_address) == (
        message_id, "Café and a folded line", "sec@elsewhere.example")


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One SMTP reply (the last line of a multi-line one)."""
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return line


def test_data_is_read_as_aiosmtpd_reads_it(store: Store, tmp_path: Path) -> None:
    """The listener reads DATA in large pieces rather than line by line: the content handed on is
    what aiosmtpd's line reader gives (dot-stuffing undone, bare CR and LF kept), the end of data
    is found wherever the pieces split it, nothing pipelined after it is swallowed, and the line
    and size limits give aiosmtpd's replies."""
    alice = new_mailbox(store, new_domain(store), "alice")
    submitter = Recording()
    stuffed = b"..dotted\r\nends with a dot.\r\n..\r\n.x\r\n\r\n"
    unstuffed = b".dotted\r\nends with a dot.\r\n.\r\nx\r\n\r\n"
    lines = b"".join(b"%04d " % n + b"x" * 93 + b"\r\n" for n in range(1000))  # 100,000 octets
    cases = [  # what is sent after DATA, how (whole or a byte at a time), the content or the reply expected
        (b".\r\n", False, b""),
        (b"one line\r\n.\r\n", False, b"one line\r\n"),
        (stuffed + b".\r\n", False, unstuffed),
        (stuffed + b".\r\n", True, unstuffed),
        (b"bare\rCR, bare\nLF, \r\r\n.\r\r\n\r.\r\n.\r\n", True, b"bare\rCR, bare\nLF, \r\r\n\r\r\n\r.\r\n"),
        (b"x" * 999 + b"\r\n.\r\n", False, b"x" * 999 + b"\r\n"),
        (b"x" * 1000 + b"\r\n.\r\n", False, b"500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)"),
        (b"y\r\n" + b"x" * 5000 + b"\r\n" * 2 + b".\r\n", False, b"500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)"),
        (lines + b".\r\n", False, lines),
        (lines + b"z\r\n.\r\n", False, b"552 5.3.4 Error: Too much mail data"),
    ]
    replies: list[bytes] = []

    async def session(client: aiosmtplib.SMTP) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
        await _reply(reader)
        for command in (b"EHLO client.example.org", b"MAIL FROM:<jane@elsewhere.example>",
                        b"RCPT TO:<" + alice.address.encode() + b">", b"DATA"):
            writer.write(command + b"\r\n")
            await _reply(reader)
        for n, (data, bytewise, _expected) in enumerate(cases):
            pipelined = b"MAIL FROM:<jane@elsewhere.example>\r\nRCPT TO:<" + alice.address.encode() + b">\r\nDATA\r\n"
            if n == len(cases) - 1:
                pipelined = b"QUIT\r\n"
            if bytewise:
                for byte in data:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    await asyncio.sleep(0.001)
                writer.write(pipelined)
            else:
                writer.write(data + pipelined)  # the next commands in the same write as the end of data
            replies.append((await _reply(reader)).rstrip(b"\r\n"))
            for _command in pipelined.splitlines():
                assert (await _reply(reader))[:1] in b"23"
        writer.close()

    _run(store, tmp_path, submitter, _quiet(), session)
    accepted = iter(submitter.submissions)
    for (_data, _bytewise, expected), reply in zip(cases, replies, strict=True):
        if expected[:4] in (b"500 ", b"552 "):
            assert reply == expected
        else:
            assert reply.startswith(b"250 ")
            raw = next(accepted).raw
            assert raw.endswith(b"\r\n" + expected) and raw.startswith(b"Received: ")
    assert next(accepted, None) is None
