"""The pickup directory, as Exchange's: a well-formed .eml file dropped there is submitted and removed.

Every poll takes the files one by one (at most ``max_per_minute``): ``NAME.eml`` is renamed to
``NAME.tmp`` (a ``.tmp`` left by a crash is taken again on the next start), validated (a sender in
Sender:/From:, at least one To/Cc/Bcc recipient, header size and recipient count within the limits),
its Bcc/Received/Resent-* fields removed, a Received: (by Pickup) and any missing Message-ID/Date
added, submitted, and deleted once ``submit()`` returned. A bad file is renamed ``NAME.bad`` with
the reason in ``NAME.bad.txt`` (Exchange's badmail) and a BADMAIL tracking event. Under back
pressure (Medium or higher) the files are left where they are. Writers should create the file
elsewhere and move it in, so a half-written file is never picked up.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import logging
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from .backpressure import BackPressure
from .envelope import Recipient, Submission, SubmissionRefused, Submitter
from .headers import field_name, header_fields, read_headers
from .metrics import TransportMetrics
from .tracking import MessageTrackingLog, TrackingEvent

log = logging.getLogger(__name__)

CONNECTOR = "Pickup"
_STRIPPED = ("bcc", "received")


class BadPickupFile(ValueError):
    """The file cannot be submitted; the message is the reason written beside it."""


class PickupDirectory:
    def __init__(self, directory: Path, submitter: Submitter, *, tracking: MessageTrackingLog,
                 metrics: TransportMetrics, backpressure: BackPressure, hostname: str, interval: float = 5,
                 max_per_minute: int = 100, max_header_bytes: int = 64 * 1024, max_recipients: int = 100) -> None:
        self.directory = directory
        self.submitter = submitter
        self.tracking = tracking
        self.metrics = metrics
        self.backpressure = backpressure
        self.hostname = hostname
        self.interval = interval
        self.max_per_minute = max_per_minute
        self.max_header_bytes = max_header_bytes
        self.max_recipients = max_recipients
        self._recent: collections.deque[float] = collections.deque()  # when the last files were submitted

    async def run(self) -> None:
        """Poll every ``interval`` seconds until cancelled."""
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                await self.poll()
            except OSError:
                log.exception("pickup directory %s could not be read", self.directory)
            await asyncio.sleep(self.interval)

    async def poll(self) -> None:
        """Take what is there now: leftover .tmp files first, then .eml files, oldest first."""
        if not self.backpressure.accepts_pickup():
            self.metrics.pickup_polls.labels("backpressure").inc()
            return
        self.metrics.pickup_polls.labels("scanned").inc()
        waiting = sorted(self.directory.glob("*.tmp")) + sorted(self.directory.glob("*.eml"),
                                                                 key=lambda p: p.stat().st_mtime)
        for path in waiting:
            if not self._within_rate() or not self.backpressure.accepts_pickup():
                return
            if not await self._take(path):
                return

    def _within_rate(self) -> bool:
        now = time.monotonic()
        while self._recent and self._recent[0] < now - 60:
            self._recent.popleft()
        return len(self._recent) < self.max_per_minute

    async def _take(self, path: Path) -> bool:
        """Submit one file; False when the transport refused it for now (stop this poll)."""
        working = path if path.suffix == ".tmp" else _claim(path)
        raw = await asyncio.to_thread(working.read_bytes)
        try:
            submission = self.prepare(raw)
        except BadPickupFile as bad:
            self._badmail(working, str(bad))
            return True
        try:
            internal_id = await self.submitter.submit(submission)
        except SubmissionRefused as refused:
            if refused.reply.startswith("5"):
                self._badmail(working, refused.reply)
                return True
            working.rename(working.with_suffix(".eml"))
            log.info("pickup file %s left for later: %s", path.name, refused.reply)
            return False
        self._recent.append(time.monotonic())
        self.metrics.messages_received.labels("pickup").inc()
        headers = submission.headers
        assert headers is not None
        self.tracking.record(TrackingEvent(
            event_id="RECEIVE", source="PICKUP", internal_message_id=internal_id, message_id=headers.message_id,
            recipient_address=[r.address for r in submission.recipients],
            total_bytes=len(submission.raw), recipient_count=len(submission.recipients),
            message_subject=headers.subject, sender_address=submission.mail_from,
            return_path=submission.mail_from, directionality="Originating", client_hostname="localhost",
            server_hostname=self.hostname, connector_id=CONNECTOR, source_context=path.name))
        working.unlink(missing_ok=True)
        return True

    def prepare(self, raw: bytes) -> Submission:
        """The Submission for a pickup file; BadPickupFile when it breaks the rules (reference section 5.4)."""
        raw = re.sub(rb"\r?\n", b"\r\n", raw)
        head, sep, body = raw.partition(b"\r\n\r\n")
        if not sep:
            raise BadPickupFile("there is no blank line between the header and the body")
        if len(head) + 2 > self.max_header_bytes:
            raise BadPickupFile(f"the header is larger than {self.max_header_bytes} bytes")
        headers = read_headers(head + b"\r\n\r\n")
        sender = headers.addresses("Sender")
        authors = headers.addresses("From")
        if len(sender) > 1:
            raise BadPickupFile("the Sender: field must hold one address")
        if not sender and len(authors) != 1:
            raise BadPickupFile("a From: address is required (several need a Sender:)")
        named = {name: headers.addresses(name) for name in ("To", "Cc", "Bcc")}
        recipients = list(dict.fromkeys(a for addresses in named.values() for a in addresses))
        if not recipients:
            raise BadPickupFile("there is no To:, Cc: or Bcc: recipient")
        if len(recipients) > self.max_recipients:
            raise BadPickupFile(f"more than {self.max_recipients} recipients")
        added = [("Received", f"from localhost by {self.hostname} (mailroom Pickup); "
                              f"{email.utils.formatdate(localtime=False)}")]
        if not headers.message_id:
            added.append(("Message-ID", email.utils.make_msgid(domain=self.hostname)))
        if not headers.get("Date"):
            added.append(("Date", email.utils.formatdate(localtime=False)))
        if not named["To"] and not named["Cc"]:
            added.append(("To", "undisclosed-recipients:;"))
        kept = [field for field in header_fields(head) if not _stripped(field)]
        final = "".join(f"{name}: {value}\r\n" for name, value in added).encode() + b"".join(kept) + b"\r\n" + body
        final_headers = read_headers(final)
        return Submission(mail_from=final_headers.sender, recipients=tuple(Recipient(a) for a in recipients),
                          raw=final, source="PICKUP", connector=CONNECTOR, client_hostname="localhost",
                          headers=final_headers)

    def _badmail(self, working: Path, reason: str) -> None:
        bad = working.with_suffix(".bad")
        working.rename(bad)
        bad.with_name(bad.name + ".txt").write_text(f"{reason}\n", encoding="utf-8")
        log.error("pickup file %s is badmail: %s", bad.name, reason)
        self.metrics.messages_refused.labels("pickup").inc()
        self.tracking.record(TrackingEvent(event_id="BADMAIL", source="PICKUP", connector_id=CONNECTOR,
                                           server_hostname=self.hostname, source_context=f"{bad.name}: {reason}"))


def _claim(path: Path) -> Path:
    """Rename NAME.eml to NAME.tmp (NAME<datetime>.tmp if that is taken), as Exchange does."""
    target = path.with_suffix(".tmp")
    if target.exists():
        target = path.with_name(f"{path.stem}{datetime.now(UTC):%Y%m%d%H%M%S%f}.tmp")
    path.rename(target)
    return target


def _stripped(field: bytes) -> bool:
    """Whether ``field`` is taken out of a pickup file."""
    name = field_name(field)
    return name in _STRIPPED or name.startswith("resent-")
