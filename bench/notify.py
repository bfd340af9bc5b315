"""Notification benchmark: event latency from a commit to the event on a streaming connection, with
1, 1,000 and 10,000 open streaming subscriptions, and the server's memory at the most.

    ./dev bench notify [--tiers 1,1000,10000] [--samples 40] [--database URL]

The server is the real ``mailroom serve`` in its own process (SQLite in a temporary folder unless
``--database``). Subscriptions are spread over mailboxes of up to 200 each (the most one
GetStreamingEvents connection carries), one open connection per mailbox, every subscription to
all folders for NewMailEvent, so each commit notifies all 200 subscriptions of its mailbox. A
sample creates an item in one mailbox's Inbox with CreateItem and waits for the envelope carrying
the NewMailEvent on that mailbox's stream; the latency runs from sending the CreateItem to that
envelope, so it includes the CreateItem request itself (an upper bound on commit -> event). The
anchor is the latency with one subscription. Targets: p99 <= 100 ms and RSS <= 1 GiB at 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from mailroom.access.passwords import hash_password
from mailroom.store import Store

from .ews import ENVELOPE, free_port, start

PASSWORD = "bench-password"
PER_CONNECTION = 200
SUBSCRIBE = ('<m:Subscribe><m:StreamingSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
             "<t:EventType>NewMailEvent</t:EventType></t:EventTypes></m:StreamingSubscriptionRequest></m:Subscribe>")
CREATE = ('<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId><t:DistinguishedFolderId Id="inbox"/>'
          "</m:SavedItemFolderId><m:Items><t:Message><t:Subject>bench</t:Subject></t:Message></m:Items></m:CreateItem>")


def auth(address: str) -> dict[str, str]:
    token = base64.b64encode(f"{address}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "text/xml; charset=utf-8"}


def stream_body(ids: list[str]) -> str:
    listed = "".join(f"<t:SubscriptionId>{s}</t:SubscriptionId>" for s in ids)
    return (f"<m:GetStreamingEvents><m:SubscriptionIds>{listed}</m:SubscriptionIds>"
            "<m:ConnectionTimeout>30</m:ConnectionTimeout></m:GetStreamingEvents>")


class Stream:
    """One open GetStreamingEvents connection; ``arrived`` is set when an envelope with a NewMailEvent comes."""

    def __init__(self, session: aiohttp.ClientSession, url: str, address: str, ids: list[str]) -> None:
        self.arrived = asyncio.Event()
        self.opened = asyncio.Event()
        self.task = asyncio.create_task(self._read(session, url, address, ids))

    async def _read(self, session: aiohttp.ClientSession, url: str, address: str, ids: list[str]) -> None:
        async with session.post(url, data=ENVELOPE.format(stream_body(ids)), headers=auth(address)) as response:
            tail, event = b"", False  # tail: the last bytes seen, so a marker split between chunks is found
            async for chunk in response.content.iter_any():
                seen = tail + chunk
                at = seen.find(b"NewMailEvent")
                event = event or at >= 0
                if b"</s:Envelope>" in seen[max(at, 0):]:
                    self.opened.set()
                    if event:
                        self.arrived.set()
                        event = False
                tail = seen[-16:]


async def post(session: aiohttp.ClientSession, url: str, address: str, body: str) -> bytes:
    async with session.post(url, data=ENVELOPE.format(body), headers=auth(address)) as response:
        payload = await response.read()
        if b'ResponseClass="Success"' not in payload:
            raise RuntimeError(f"{body[:40]}... failed: {payload[:400]!r}")
        return payload


async def subscribe(session: aiohttp.ClientSession, url: str, address: str, count: int) -> list[str]:
    limit = asyncio.Semaphore(16)

    async def one() -> str:
        async with limit:
            payload = await post(session, url, address, SUBSCRIBE)
        return payload.split(b"<m:SubscriptionId>")[1].split(b"</m:SubscriptionId>")[0].decode()

    return list(await asyncio.gather(*(one() for _ in range(count))))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def tier(session: aiohttp.ClientSession, url: str, held: dict[str, list[str]], addresses: list[str],
               total: int, samples: int) -> tuple[float, float]:
    """Hold ``total`` subscriptions on open streams, then measure ``samples`` latencies (ms): p50, p99."""
    need = total
    for address in addresses:
        have = held.setdefault(address, [])
        want = min(PER_CONNECTION, need)
        have += await subscribe(session, url, address, want - len(have))
        need -= want
        if need == 0:
            break
    streams = {a: Stream(session, url, a, ids) for a, ids in held.items() if ids}
    await asyncio.wait_for(asyncio.gather(*(s.opened.wait() for s in streams.values())), 120)
    latencies = []
    order = list(streams)
    try:
        for n in range(samples):
            address = order[n % len(order)]
            stream = streams[address]
            stream.arrived.clear()
            started = time.perf_counter()
            await post(session, url, address, CREATE)
            await asyncio.wait_for(stream.arrived.wait(), 30)
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
    finally:
        for stream in streams.values():
            stream.task.cancel()
        await asyncio.gather(*(s.task for s in streams.values()), return_exceptions=True)
    latencies.sort()
    return statistics.median(latencies), latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]


async def run(url: str, pid: int, tiers: list[int], addresses: list[str], samples: int) -> None:
    held: dict[str, list[str]] = {}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        anchor = None
        for total in tiers:
            t0 = time.monotonic()
            p50, p99 = await tier(session, url, held, addresses, total, samples)
            anchor = anchor or p50
            print(f"  {total:>6} subscriptions on {-(-total // PER_CONNECTION):>3} connections   "
                  f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   p50 / anchor {p50 / anchor:5.2f}x   "
                  f"server RSS {rss_mib(pid):7.1f} MiB   ({time.monotonic() - t0:.0f}s)", flush=True)
        worst = p99
        rss = rss_mib(pid)
    print()
    print(f"at {tiers[-1]} subscriptions: p99 {worst:.1f} ms (target <= 100 ms: {'OK' if worst <= 100 else 'MISSED'}),"
          f" RSS {rss:.0f} MiB (target <= 1024 MiB: {'OK' if rss <= 1024 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiers", default="1,1000,10000", help="subscription counts, ascending")
    parser.add_argument("--samples", type=int, default=40, help="latency samples per tier")
    parser.add_argument("--database", default="", help="store URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    tiers = [int(n) for n in args.tiers.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-notify-"))
    url = args.database or f"sqlite:///{workdir / 'mailroom.db'}"
    store = Store.open(url)
    store.directory.add_domain("bench.example")
    hashed = hash_password(PASSWORD)
    addresses = [store.directory.add_mailbox(f"user{n}@bench.example", hashed).address
                 for n in range(-(-tiers[-1] // PER_CONNECTION))]
    store.close()
    port = free_port()
    server = start([sys.executable, "-m", "mailroom", "serve", "--data", str(workdir), "--database", url,
                    "--http", f"127.0.0.1:{port}", "--https", "", "--smtp", "",
                    "--submission", "", "--metrics", ""], "EWS  http", dict(os.environ))
    print(f"{'SQLite' if url.startswith('sqlite') else 'PostgreSQL'}; {args.samples} samples per tier; "
          "latency = CreateItem sent -> NewMailEvent envelope received", flush=True)
    try:
        asyncio.run(run(f"http://127.0.0.1:{port}/EWS/Exchange.asmx", server.pid, tiers, addresses, args.samples))
    finally:
        server.kill()  # open streams would hold a graceful shutdown
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
