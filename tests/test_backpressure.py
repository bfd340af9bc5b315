"""Back pressure on real readings: the disk meter against thresholds set around the disk's actual
use, and the running server refusing mail at MAIL FROM, with the level in its metrics."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailroom.transport.backpressure import (
    BackPressure,
    Level,
    Resource,
    Thresholds,
    disk_used_percent,
    process_memory_percent,
    system_memory_percent,
)

from .conftest import PASSWORD, RunningServer
from .test_smtp_inbound import _message


def test_the_disk_meter_moves_with_hysteresis(tmp_path: Path) -> None:
    used = disk_used_percent(tmp_path)
    assert 0 < used <= 100

    def around(up: float, high: float, down_high: float, down: float) -> Thresholds:
        return Thresholds(used + up, used + high, used + down_high, used + down)

    disk = Resource("DatabaseUsedSpace", lambda: disk_used_percent(tmp_path), around(-4, -2, -3, -5))
    pressure = BackPressure([disk])
    assert pressure.meter() == Level.HIGH and disk.reading == pytest.approx(used, abs=1)
    disk.thresholds = around(10, 20, 2, -2)  # the disk is now under both thresholds going up...
    assert pressure.meter() == Level.MEDIUM  # ...but coming down from High it stops at Medium
    fresh = BackPressure([Resource("DatabaseUsedSpace", lambda: disk_used_percent(tmp_path), around(10, 20, 2, -2))])
    assert fresh.meter() == Level.NORMAL  # the same reading and thresholds, coming from Normal
    disk.thresholds = around(10, 20, 4, 2)
    assert pressure.meter() == Level.NORMAL
    assert pressure.refusal(authenticated=False) is None


def test_memory_meters_read_proc() -> None:
    assert 0 < process_memory_percent() < 100
    assert 0 < system_memory_percent() < 100


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        Thresholds(low_to_medium=99, medium_to_high=96, high_to_medium=97, medium_to_low=94)


def _levels(server: RunningServer) -> dict[str, float]:
    return {dict(labels)["resource"]: value for (name, labels), value in server.metrics().items()
            if name == "mailroom_backpressure_level"}


@pytest.fixture
def server(request: pytest.FixtureRequest, store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    """The server; ``request.param``, when given, is the disk thresholds (set under the real disk's use)."""
    thresholds = getattr(request, "param", None)
    settings = {"backpressure.database_used_space": thresholds} if thresholds else {}
    running = RunningServer(store_url, tmp_path / "data", **settings)
    yield running
    running.stop()


def _submission_client(server: RunningServer, tmp_path: Path, address: str) -> smtplib.SMTP:
    host, port = server.submission_url.removeprefix("smtp://").rsplit(":", 1)
    client = smtplib.SMTP(host, int(port), timeout=30)
    client.starttls(context=ssl.create_default_context(cafile=tmp_path / "data" / "tls" / "cert.pem"))
    client.login(address, PASSWORD)
    return client


def _inbound_client(server: RunningServer) -> smtplib.SMTP:
    host, port = server.smtp_url.removeprefix("smtp://").rsplit(":", 1)
    return smtplib.SMTP(host, int(port), timeout=30)


@pytest.mark.parametrize("server", [[0, 100, 100, 0]], indirect=True)
def test_medium_refuses_inbound_but_not_authenticated_submission(server, server_store, mailbox, tmp_path):
    levels = _levels(server)
    assert levels["overall"] == Level.MEDIUM
    assert [v for k, v in levels.items() if k.startswith("DatabaseUsedSpace[")] == [Level.MEDIUM]
    with _inbound_client(server) as inbound:
        assert inbound.docmd("EHLO", "client.example.org")[0] == 250  # connections are still accepted
        assert inbound.docmd("MAIL", "FROM:<s@elsewhere.example>") == (452, b"4.3.1 Insufficient system resources")
    with _submission_client(server, tmp_path, mailbox.address) as submit:
        msg = _message(mailbox.address)
        msg.replace_header("From", mailbox.address)
        assert submit.sendmail(mailbox.address, [mailbox.address], msg.as_bytes()) == {}


@pytest.mark.parametrize("server", [[0, 0, 0, 0]], indirect=True)
def test_high_refuses_all_submission(server, server_store, mailbox, tmp_path):
    assert _levels(server)["overall"] == Level.HIGH
    with _submission_client(server, tmp_path, mailbox.address) as submit:
        assert submit.docmd("MAIL", f"FROM:<{mailbox.address}>") == (452, b"4.3.1 Insufficient system resources")
    with _inbound_client(server) as inbound:
        inbound.ehlo("client.example.org")
        assert inbound.docmd("MAIL", "FROM:<s@elsewhere.example>")[0] == 452


def test_metrics_count_sessions_and_messages(server, mailbox):
    with _inbound_client(server) as inbound:
        inbound.sendmail("s@elsewhere.example", [mailbox.address], _message(mailbox.address).as_bytes())
    samples = server.metrics()
    assert samples[("mailroom_messages_received_total", (("listener", "inbound"),))] == 1
    assert samples[("mailroom_smtp_sessions_total", (("listener", "inbound"),))] == 1
    assert samples[("mailroom_backpressure_level", (("resource", "overall"),))] == Level.NORMAL
    assert ("mailroom_backpressure_reading", (("resource", "PrivateBytes"),)) in samples
