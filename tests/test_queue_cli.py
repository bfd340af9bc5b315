"""``mailroom queue ...`` and ``mailroom message ...`` against a running server's queue, from
another process as an administrator would; on both store back ends.

Mail for a remote domain waits in the smart host's queue: the tests' smart host is a closed
loopback port (tests/conftest.py), which gives the commands a message that stays put."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchangelib import Mailbox, Message

from mailroom.transport.tracking import MessageTrackingLog, TrackingQuery

from .conftest import RunningServer, make_account, new_domain, new_mailbox
from .test_cli import fails, mailroom, ok

SMART_HOST = "127.0.0.1:9"


# Where mail for remote.example waits: (settings, queue, DeliveryType, the status of its last error).
ROUTES = {"smart host": ({}, SMART_HOST, "SmartHostConnectorDelivery", "4.4.1"),  # nothing listens there
          "no remote delivery": ({"transport.remote_delivery": False}, "Unreachable", "Unreachable", "4.4.0")}


@pytest.fixture(params=list(ROUTES))
def route(request: pytest.FixtureRequest) -> tuple[dict[str, object], str, str, str]:
    return ROUTES[request.param]


@pytest.fixture
def server(store_url: str, tmp_path: Path, route: tuple[dict[str, object], str, str, str]) -> Iterator[RunningServer]:
    running = RunningServer(store_url, tmp_path / "data", **{"transport.queue_scan_interval": 1, **route[0]})
    yield running
    running.stop()


def _send(account, subject: str) -> None:  # noqa: ANN001
    Message(account=account, subject=subject, body="Hello",
            to_recipients=[Mailbox(email_address="carol@remote.example")]).send()


def _row(output: str, word: str) -> list[str]:
    [line] = [line for line in output.splitlines() if word in line]
    return [cell.strip() for cell in line.strip("│┃ ").split("│")]


def _ids(output: str) -> list[str]:
    return re.findall(r"^│ (\d+) ", output, re.MULTILINE)


def test_queue_and_message_commands(server, server_store, tmp_path, route):
    _, queue, delivery_type, status = route
    domain = new_domain(server_store)
    alice = new_mailbox(server_store, domain, "alice")
    account = make_account(server, alice.address)
    data = server.config.data_dir
    _send(account, "First")
    _send(account, "Second")
    server.settle()

    listing = ok(mailroom("queue", "list", data=data))
    assert _row(listing, "Submission")[1:4] == ["Undefined", "Ready", "0"]
    waiting = _row(listing, f"│ {queue} ")
    assert waiting[1:4] == [delivery_type, "Retry", "2"]
    assert status in waiting[5]
    first, second = _ids(ok(mailroom("queue", "messages", queue, data=data)))
    fails(mailroom("queue", "messages", "nowhere.example", data=data), "no queue")

    export = tmp_path / "first.eml"
    fails(mailroom("message", "export", first, "--to", str(export), data=data), "only a suspended message")
    assert not export.exists()
    ok(mailroom("message", "suspend", first, data=data))
    assert _row(ok(mailroom("queue", "messages", data=data)), f"│ {first} ")[2] == "Suspended"
    ok(mailroom("message", "export", first, "--to", str(export), data=data))
    assert b"Subject: First" in export.read_bytes()
    fails(mailroom("message", "suspend", "999999", data=data), "no message 999999")
    fails(mailroom("queue", "retry", "Poison", data=data), "poison queue")

    assert f"1 message(s) in {queue} resubmitted" in ok(mailroom("queue", "retry", queue, "--resubmit",
                                                                 data=data))  # the suspended one stays
    ok(mailroom("message", "resume", first, data=data))
    ok(mailroom("message", "remove", first, data=data))  # with a non-delivery report, as Exchange
    ok(mailroom("message", "remove", second, "--no-ndr", data=data))
    server.settle()
    assert _ids(ok(mailroom("queue", "messages", data=data))) == []
    [report] = account.inbox.all()
    assert report.subject == "Undeliverable: First" and report.item_class == "REPORT.IPM.Note.NDR"
    assert "deleted by administrative action" in report.body
    log = MessageTrackingLog(data / "logs" / "MessageTracking")
    assert [e.internal_message_id for e in log.search(TrackingQuery(event_id="RESUBMIT"))] == [second]
