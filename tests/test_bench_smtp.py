"""The SMTP benchmark's harness against its ceiling server: the load counts what was accepted
and the messages have the size asked for. (Rates are not asserted: timings belong in bench/.)"""

from __future__ import annotations

from pathlib import Path

from bench.smtp import Ceiling, Message, load


def test_message_has_the_requested_size_and_a_fresh_message_id() -> None:
    message = Message(4096)
    first, second = message.new(), message.new()
    assert len(first) == len(second) == 4096
    assert first != second
    assert first.endswith(b"\r\n")


def test_load_counts_accepted_messages_and_their_latencies(tmp_path: Path) -> None:
    ceiling = Ceiling(tmp_path)
    try:
        point = load(ceiling.port, 3, 0.2, 0.5, ["a@bench.example", "b@bench.example"], Message(4096))
    finally:
        ceiling.close()
    assert point.refusals == {}
    assert point.latencies
    assert point.accepted_total >= len(point.latencies)
    assert 0 < point.percentile(0.5) <= point.percentile(0.99)
    assert ceiling.proc.returncode is not None
