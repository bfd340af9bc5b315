"""The message tracking log's files: Exchange's format, rotation, circular logging and search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailroom.transport.tracking import FIELDS, MessageTrackingLog, TrackingEvent, TrackingQuery, read_file

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _event(event_id: str = "RECEIVE", when: datetime = T0, **values: object) -> TrackingEvent:
    values.setdefault("recipient_address", ["a@example.com", "b@example.com"])
    values.setdefault("recipient_status", ["250 2.1.5 OK", "250 2.1.5 OK"])
    return TrackingEvent(event_id=event_id, source="SMTP", date_time=when, sender_address="s@example.org",
                         message_id="<m1@example.org>", internal_message_id="7", message_subject="Hello, world",
                         total_bytes=1234, recipient_count=2, **values)  # type: ignore[arg-type]


def test_records_round_trip_in_exchanges_format(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path)
    log.record(_event())
    log.close()
    [path] = log.files()
    assert path.name == "MSGTRK20261120-1.log"
    text = path.read_bytes().decode()
    assert text.startswith("#Software: mailroom\r\n")
    assert f"#Fields: {','.join(FIELDS)}\r\n" in text
    [back] = list(read_file(path))
    assert back == _event()


def test_new_file_each_day_and_at_the_size_limit(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path, max_file_bytes=600)
    for i in range(4):
        log.record(_event(when=T0 + timedelta(seconds=i)))
    log.record(_event(when=T0 + timedelta(days=1)))
    log.close()
    names = [p.name for p in log.files()]
    assert names[-1] == "MSGTRK20261121-1.log"
    assert len([n for n in names if n.startswith("MSGTRK20261120-")]) >= 2
    assert sum(len(list(read_file(p))) for p in log.files()) == 5


def test_files_past_the_maximum_age_or_size_are_removed(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path, max_age=timedelta(days=2))
    log.record(_event(when=T0))
    log.record(_event(when=T0 + timedelta(days=3)))
    log.close()
    assert [p.name for p in log.files()] == ["MSGTRK20261123-1.log"]
    small = MessageTrackingLog(tmp_path / "small", max_directory_bytes=1)
    small.record(_event(when=T0))
    small.record(_event(when=T0 + timedelta(days=1)))
    small.close()
    assert [p.name for p in small.files()] == ["MSGTRK20261121-1.log"]


def test_search_filters_like_get_messagetrackinglog(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path)
    log.record(_event("RECEIVE", T0))
    log.record(_event("DELIVER", T0 + timedelta(minutes=1), recipient_address=["b@example.com"],
                      recipient_status=["250"]))
    log.record(_event("FAIL", T0 + timedelta(minutes=2), recipient_address=["c@example.net"],
                      recipient_status=["550 5.1.1"]))
    assert [e.event_id for e in log.search(TrackingQuery(recipients=("B@example.com",)))] == ["RECEIVE", "DELIVER"]
    assert [e.event_id for e in log.search(TrackingQuery(event_id="fail"))] == ["FAIL"]
    assert [e.event_id for e in log.search(TrackingQuery(start=T0 + timedelta(minutes=1),
                                                         end=T0 + timedelta(minutes=2)))] == ["DELIVER"]
    assert len(log.search(TrackingQuery(subject="world", result_size=2))) == 2
    assert log.search(TrackingQuery(sender="nobody@example.org")) == []


def test_subject_logging_can_be_turned_off_and_unknown_events_are_refused(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path, log_subject=False)
    log.record(_event())
    log.close()
    assert [e.message_subject for e in read_file(log.files()[0])] == [""]
    with pytest.raises(ValueError):
        _event("NOSUCHEVENT")
