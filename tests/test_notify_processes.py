"""Two mailroom processes on one PostgreSQL database: an item created through one reaches a
streaming subscription held by the other (PostgreSQL NOTIFY wakes its stream), and a pull
subscription of the other sees it too. The second server is a real ``mailroom serve`` process."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import requests
from exchangelib import Message

from mailroom.ews import streaming

from .conftest import PASSWORD
from .soap import NS, codes, envelope, parse, post
from .test_cli import ENV, _read_urls
from .test_ews_pull import get_events, pull_request
from .test_ews_streaming import get_streaming_events, subscribe

ARRIVAL = 20.0  # seconds an event may take at most: less than the keep-alive (30 s), so only a wake-up delivers it
assert ARRIVAL < streaming.KEEPALIVE


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def other_server(server, store_url, tmp_path) -> Iterator[str]:  # noqa: ANN001 - after ``server`` made the schema
    command = [sys.executable, "-m", "mailroom", "serve", "--data", str(tmp_path / "other"), "--database", store_url,
               "--http", "127.0.0.1:0", "--https", "", "--smtp", "", "--submission", "", "--metrics", ""]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        (url,) = _read_urls(process, 1)
        yield url
    finally:
        process.terminate()  # (an open stream holds a graceful shutdown for up to aiohttp's 60 s: do not wait)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def soap_at(url: str, address: str, body: str):  # noqa: ANN201 - an lxml element
    return parse(post(url, envelope(body), address, PASSWORD))


def test_an_event_committed_in_one_process_reaches_a_stream_in_another(other_server, account, mailbox):
    events = "<t:EventTypes><t:EventType>CreatedEvent</t:EventType></t:EventTypes>"
    answer = soap_at(other_server, mailbox.address, subscribe(' SubscribeToAllFolders="true"', events))
    sid = answer.find(".//m:SubscriptionId", NS).text
    pulled = soap_at(other_server, mailbox.address, pull_request())
    pull_sid, watermark = (pulled.find(f".//m:{name}", NS).text for name in ("SubscriptionId", "Watermark"))

    received = bytearray()
    opened, arrived = threading.Event(), threading.Event()

    def stream() -> None:
        token = requests.auth.HTTPBasicAuth(mailbox.address, PASSWORD)
        with requests.post(other_server, data=envelope(get_streaming_events([sid])), auth=token, stream=True,
                           headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=ARRIVAL * 2) as response:
            for chunk in response.iter_content(chunk_size=None):
                received.extend(chunk)
                opened.set()
                if b"CreatedEvent" in received:
                    arrived.set()
                    return

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    assert opened.wait(ARRIVAL)  # the first envelope (ConnectionStatus OK) is there: the stream is open
    message = Message(account=account, folder=account.inbox, subject="across processes")  # through the first server
    message.save()
    assert arrived.wait(ARRIVAL)
    assert f'Id="{message.id}"'.encode() in received
    thread.join(ARRIVAL)

    answer = soap_at(other_server, mailbox.address, get_events(pull_sid, watermark))
    assert codes(answer) == ["NoError"]
    assert [e.get("Id") for e in answer.iterfind(".//t:CreatedEvent/t:ItemId", NS)] == [message.id]
