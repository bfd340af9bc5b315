"""The pickup directory of the running server: files dropped in are submitted and removed, bad ones
become badmail with a reason, a leftover .tmp is taken on start, and back pressure leaves them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailroom.store import Store
from mailroom.store.model import Mailbox
from mailroom.transport.headers import read_headers
from mailroom.transport.pickup import PickupDirectory
from mailroom.transport.tracking import MessageTrackingLog, TrackingEvent, TrackingQuery

from .conftest import RunningServer, new_mailbox
from .test_smtp_inbound import _inbox


@pytest.fixture
def server(request: pytest.FixtureRequest, store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """Polling every second, at most 3 recipients; ``request.param`` adds settings (and a
    ``leftover`` file to put in the directory before the start)."""
    settings = dict(getattr(request, "param", {}))
    leftover = settings.pop("leftover", None)
    if leftover:
        (tmp_path / "data" / "Pickup").mkdir(parents=True)
        (tmp_path / "data" / "Pickup" / "crashed.tmp").write_bytes(leftover)
    running = RunningServer(store_url, tmp_path / "data", **{"transport.pickup_interval_seconds": 1,
                                                             "transport.pickup_max_recipients": 3, **settings})
    yield running
    running.stop()


def _wait(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, "the pickup directory was not processed"
        time.sleep(0.1)


def _drop(tmp_path: Path, name: str, text: str) -> Path:
    """Write the file beside the directory and move it in, as writers should."""
    staged = tmp_path / name
    staged.write_bytes(text.replace("\n", "\r\n").encode())
    return staged.rename(tmp_path / "data" / "Pickup" / name)


def _tracking(tmp_path: Path) -> MessageTrackingLog:
    return MessageTrackingLog(tmp_path / "data" / "logs" / "MessageTracking")


def _badmail_events(tmp_path: Path) -> list[TrackingEvent]:
    """The BADMAIL tracking events: the last thing the server writes for a bad file (after the
    .bad and .bad.txt files), so waiting for one waits for all."""
    return _tracking(tmp_path).search(TrackingQuery(event_id="BADMAIL"))


def _text(sender: str, to: str, extra: str = "") -> str:
    return f"From: {sender}\nTo: {to}\n{extra}Subject: Dropped\n\nA body.\n"


def test_a_dropped_file_is_submitted_and_removed(server, server_store: Store, mailbox: Mailbox, tmp_path):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    path = _drop(tmp_path, "one.eml", _text("app@example.org", mailbox.address,
                                            f"Bcc: {bob.address}\nReceived: from forged\nResent-To: x@y.z\n"))
    _wait(lambda: not path.exists() and not path.with_suffix(".tmp").exists())
    (alice_raw,) = _inbox(server_store, mailbox)
    (bob_raw,) = _inbox(server_store, bob)
    head = alice_raw.split(b"\r\n\r\n", 1)[0].decode()
    assert alice_raw == bob_raw and alice_raw.endswith(b"\r\n\r\nA body.\r\n")
    assert head.startswith("Return-Path: <app@example.org>\r\nReceived: from localhost by ")
    assert "(mailroom Pickup)" in head
    assert "Bcc:" not in head and "forged" not in head and "Resent-To" not in head
    assert "\r\nMessage-ID: <" in head and "\r\nDate: " in head
    (event,) = _tracking(tmp_path).search(TrackingQuery(event_id="RECEIVE"))
    assert (event.source, event.connector_id, event.sender_address) == ("PICKUP", "Pickup", "app@example.org")
    assert sorted(event.recipient_address) == sorted([mailbox.address, bob.address])


@pytest.mark.parametrize("text, reason", [
    ("From: a@example.org\nSubject: no recipients\n\nbody\n", "there is no To:, Cc: or Bcc: recipient"),
    ("To: someone@example.org\nSubject: no sender\n\nbody\n", "a From: address is required"),
    ("From: a@example.org\nTo: a@x.org, b@x.org, c@x.org, d@x.org\n\nbody\n", "more than 3 recipients"),
    ("From: a@example.org\nTo: b@example.org\n", "there is no blank line"),
])
def test_a_bad_file_becomes_badmail_with_its_reason(server, server_store, mailbox, tmp_path, text, reason):
    path = _drop(tmp_path, "bad.eml", text.replace("b@example.org", mailbox.address))
    bad = path.with_suffix(".bad")
    _wait(lambda: bool(_badmail_events(tmp_path)))
    assert not path.exists() and bad.read_bytes() == text.replace("b@example.org", mailbox.address).replace(
        "\n", "\r\n").encode()
    assert bad.with_name("bad.bad.txt").read_text().startswith(reason)
    (event,) = _badmail_events(tmp_path)
    assert event.source == "PICKUP" and reason in event.source_context
    assert _inbox(server_store, mailbox) == []


@pytest.mark.parametrize("server", [{"transport.pickup_max_header_bytes": 200}], indirect=True)
def test_a_header_over_the_limit_is_badmail(server, mailbox, tmp_path):
    path = _drop(tmp_path, "big.eml", _text("a@example.org", mailbox.address, f"X-Filler: {'x' * 200}\n"))
    _wait(lambda: bool(_badmail_events(tmp_path)))
    assert path.with_name("big.bad.txt").read_text().startswith("the header is larger than 200 bytes")


LEFTOVER = b"From: app@example.org\r\nTo: leftover@nowhere.invalid\r\nSubject: left over\r\n\r\nbody\r\n"


@pytest.mark.parametrize("server", [{"leftover": LEFTOVER}], indirect=True)
def test_a_leftover_tmp_file_is_taken_on_start(server, tmp_path):
    leftover = tmp_path / "data" / "Pickup" / "crashed.tmp"
    _wait(lambda: not leftover.exists())
    (event,) = _tracking(tmp_path).search(TrackingQuery(event_id="RECEIVE"))
    assert event.recipient_address == ["leftover@nowhere.invalid"] and event.message_subject == "left over"


def _polls_under_pressure(server: RunningServer) -> float:
    return server.metrics().get(("mailroom_pickup_polls_total", (("outcome", "backpressure"),)), 0.0)


@pytest.mark.parametrize("server", [{"backpressure.database_used_space": [0, 100, 100, 0]}], indirect=True)
def test_files_stay_under_back_pressure(server, server_store, mailbox, tmp_path):
    path = _drop(tmp_path, "held.eml", _text("app@example.org", mailbox.address))
    seen = _polls_under_pressure(server)
    _wait(lambda: _polls_under_pressure(server) >= seen + 2)  # two polls since the file was there
    assert path.exists() and _inbox(server_store, mailbox) == []


@pytest.mark.parametrize("text", [
    _text("a@x.example", "b@x.example"),
    "Received: from far\nFrom: a@x.example\nBcc: c@x.example\nMessage-ID: <m@x.example>\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\nResent-To: d@x.example\nSubject: =?utf-8?q?Caf=C3=A9?=\n\nBody\n",
    "Sender: s@x.example\nFrom: a@x.example, b@x.example\nCc: c@x.example,\n d@x.example\n\nBody\n",
])
def test_a_pickup_submission_carries_the_headers_of_its_final_content(tmp_path, text):
    pickup = PickupDirectory(tmp_path, None, tracking=None, metrics=None, backpressure=None,  # type: ignore[arg-type]
                             hostname="mail.test")
    submission = pickup.prepare(text.replace("\n", "\r\n").encode())
    assert submission.headers == read_headers(submission.raw)
