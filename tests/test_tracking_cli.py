"""``mailroom tracking search|counts`` on the log files a running server wrote."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .conftest import new_mailbox
from .test_cli import fails, ok, table_rows
from .test_smtp_inbound import _message

WIDE = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}


def tracking(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailroom", "tracking", *args, "--data", str(data)],
                          capture_output=True, text=True, timeout=60, env=WIDE, stdin=subprocess.DEVNULL)


def _send(server, sender: str, rcpts: list[str], subject: str) -> str:
    msg = _message(rcpts[0], subject=subject)
    msg.replace_header("From", sender)  # the tracking log's sender is the From: address
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as client:
        client.sendmail(sender, rcpts, msg.as_bytes())
    return msg["Message-ID"]


def test_search_and_counts(server, server_store, mailbox, tmp_path):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    first = _send(server, "ann@elsewhere.example", [mailbox.address], "First report")
    _send(server, "ann@elsewhere.example", [mailbox.address, bob.address], "Second report")
    _send(server, "carl@elsewhere.example", [bob.address], "Lunch")
    server.settle()  # the queue's DELIVER records are written
    data = tmp_path / "data"

    rows = table_rows(ok(tracking(data, "search", "--event-id", "receive")))
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
        ("RECEIVE", "SMTP", "ann@elsewhere.example", "First report"),
        ("RECEIVE", "SMTP", "ann@elsewhere.example", "Second report"),
        ("RECEIVE", "SMTP", "carl@elsewhere.example", "Lunch")]
    header = ok(tracking(data, "search")).splitlines()
    assert any("Timestamp" in line and "EventId" in line and "MessageSubject" in line for line in header)
    assert [r[5] for r in table_rows(ok(tracking(data, "search", "--recipients", f"x@y.z, {bob.address}",
                                                 "--event-id", "RECEIVE")))] == ["Second report", "Lunch"]
    rows = table_rows(ok(tracking(data, "search", "--message-id", first)))
    assert {r[6] for r in rows} == {first} and sorted(r[1] for r in rows) == ["DELIVER", "RECEIVE"]
    assert [r[5] for r in table_rows(ok(tracking(data, "search", "--subject", "REPORT", "--result-size", "1")))] == [
        "First report"]
    assert table_rows(ok(tracking(data, "search", "--sender", "nobody@elsewhere.example"))) == []
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert table_rows(ok(tracking(data, "search", "--start", later))) == []
    assert len(table_rows(ok(tracking(data, "search", "--end", later, "--source", "smtp",
                                      "--result-size", "unlimited")))) == 3

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    counts = table_rows(ok(tracking(data, "counts", "--start", today, "--end", tomorrow, "--event-id", "RECEIVE")))
    assert counts == [["ann@elsewhere.example", "2"], ["carl@elsewhere.example", "1"]]
    per_recipient = dict(map(tuple, table_rows(ok(tracking(data, "counts", "--by", "recipient", "--event-id",
                                                           "DELIVER")))))
    assert per_recipient == {mailbox.address: "2", bob.address: "2"}
    assert table_rows(ok(tracking(data, "counts", "--by", "event"))) == [["DELIVER", "4"], ["RECEIVE", "3"]]


def test_bad_arguments_are_refused(tmp_path):
    fails(tracking(tmp_path, "search", "--result-size", "lots"), "--result-size")
    fails(tracking(tmp_path, "counts", "--by", "colour"), "--by")
    assert tracking(tmp_path, "search", "--start", "yesterday").returncode != 0
