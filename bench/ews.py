"""EWS benchmark: GetItem and FindItem (a page of 100) per second on folders of 1,000 and
100,000 items, against the same HTTP stack serving a trivial response (the anchor), measured in
the same run. Load comes from wrk in another process on the other core.

    ./dev bench [--items-large N] [--seconds S] [--rounds R] [--database URL]

Prints requests/s (median of the rounds), latency p50/p99, and the ratios the targets name:
GetItem >= 40% of the anchor; FindItem on the large folder within 2x of the small one.
"""

from __future__ import annotations

import argparse
import base64
import collections
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mailroom.access.passwords import hash_password
from mailroom.content import recipients
from mailroom.content.recipients import Address
from mailroom.store import Store, ids
from mailroom.store.model import Body, NewItem
from mailroom.throttling import policy as throttling

HERE = Path(__file__).resolve().parent
PASSWORD = "bench-password"
ENVELOPE = ('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
            'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>'
            '<t:RequestServerVersion Version="Exchange2016"/></s:Header><s:Body>{}</s:Body></s:Envelope>')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def populate(store: Store, sizes: dict[str, int]) -> dict[str, tuple[str, list[str]]]:
    """A mailbox with one folder per size; returns folder id and a sample of item ids per folder."""
    store.directory.add_domain("bench.example")
    mailbox = store.directory.add_mailbox("bench@bench.example", hash_password(PASSWORD), "Bench User")
    # One client flooding the server would be throttled, as on Exchange; a benchmark account gets
    # an unlimited policy, as Exchange admins give theirs.
    store.throttling.add("Benchmark", {p.name: None for p in throttling.PARAMETERS})
    store.throttling.assign(mailbox.address, "Benchmark")
    inbox = store.folders.distinguished(mailbox, "inbox")
    sender = recipients.build("From", [Address("Sender Person", "sender@elsewhere.example")], single=True)
    to = recipients.build("ToRecipients", [Address("Bench User", "bench@bench.example")])
    found = {}
    for name, count in sizes.items():
        folder = store.folders.create(mailbox, inbox.id, name, "IPF.Note")
        sample: list[str] = []
        for start in range(0, count, 2000):
            batch = [NewItem(props={
                "Subject": f"Message {i} about the quarterly report", "From": sender, "ToRecipients": to,
                "DisplayTo": "Bench User", "IsRead": i % 3 == 0, "Importance": "Normal",
                "DateTimeReceived": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000 + i * 60)),
                "InternetMessageId": f"<bench-{name}-{i}@bench.example>"},
                body=Body("HTML", f"<html><body><p>Body of message {i}.</p>" + "<p>Lorem ipsum dolor.</p>" * 20
                          + "</body></html>")) for i in range(start, min(count, start + 2000))]
            created = store.items.create_many(mailbox, folder.id, batch)
            sample.extend(ids.item_id(mailbox.guid, i) for i in created[:: max(1, len(created) // 20)])
        found[name] = (ids.folder_id(mailbox.guid, folder.id), sample[:100])
    return found


def get_item_body(item_id: str) -> str:
    return ENVELOPE.format(
        '<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>'
        f'<m:ItemIds><t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>')


def find_item_body(folder_id: str) -> str:
    return ENVELOPE.format(
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>'
        '<m:IndexedPageItemView MaxEntriesReturned="100" Offset="0" BasePoint="Beginning"/>'
        '<m:SortOrder><t:FieldOrder Order="Descending"><t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldOrder>'
        f'</m:SortOrder><m:ParentFolderIds><t:FolderId Id="{folder_id}"/></m:ParentFolderIds></m:FindItem>')


def lua_script(bodies: list[str], workdir: Path, user: str = "bench@bench.example") -> Path:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    quoted = ",\n".join("[==[" + b + "]==]" for b in bodies)
    script = workdir / f"wrk-{len(list(workdir.iterdir()))}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "text/xml; charset=utf-8"\n'
        f'wrk.headers["Authorization"] = "Basic {token}"\n'
        f"local bodies = {{\n{quoted}\n}}\n"
        "local n = 0\n"
        "request = function()\n  n = n % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[n])\nend\n"
        'done = function(summary, latency, requests)\n'
        '  io.write(string.format("RESULT %d %d %f %f %f\\n", summary.requests, summary.errors.status, '
        'summary.duration, latency:percentile(50), latency:percentile(99)))\nend\n')
    return script


def wrk_command(url: str, script: Path, seconds: int, connections: int) -> list[str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    return ["taskset", "-c", "1", *cmd] if shutil.which("taskset") else cmd


def wrk_result(out: str) -> tuple[int, int, float, float, float]:
    """(requests, non-2xx answers, seconds, p50 ms, p99 ms) from a wrk run with ``lua_script``."""
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests_done, errors, duration_us, p50, p99 = match.groups()
    return int(requests_done), int(errors), float(duration_us) / 1e6, float(p50) / 1000, float(p99) / 1000


def run_wrk(url: str, script: Path, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one wrk run; fails loudly on non-2xx answers."""
    out = subprocess.run(wrk_command(url, script, seconds, connections), capture_output=True, text=True,
                         check=True).stdout
    requests_done, errors, duration, p50, p99 = wrk_result(out)
    if errors:
        raise RuntimeError(f"{errors} non-2xx answers from {url}")
    return requests_done / duration, p50, p99


def start(cmd: list[str], ready: str, env: dict[str, str]) -> subprocess.Popen[str]:
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{cmd} exited: {proc.wait()}")
        if ready in line:
            proc.tail = collections.deque(maxlen=40)  # type: ignore[attr-defined]
            threading.Thread(target=proc.tail.extend, args=(proc.stdout,), daemon=True).start()  # type: ignore
            return proc
    raise RuntimeError(f"{cmd} did not become ready")


def measure(name: str, url: str, bodies: list[str], args: argparse.Namespace, workdir: Path) -> dict:
    script = lua_script(bodies, workdir)
    run_wrk(url, script, 2, args.connections)  # warm up
    runs = [run_wrk(url, script, args.seconds, args.connections) for _ in range(args.rounds)]
    rps = statistics.median(r[0] for r in runs)
    p50 = statistics.median(r[1] for r in runs)
    p99 = statistics.median(r[2] for r in runs)
    print(f"  {name:<28} {rps:9.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms", flush=True)
    return {"rps": rps, "p50": p50, "p99": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items-small", type=int, default=1_000)
    parser.add_argument("--items-large", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database", default="", help="store URL (default: SQLite in a temporary folder)")
    parser.add_argument("--workers", type=int, default=8, help="the server's EWS worker threads")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian: apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
    url = args.database or f"sqlite:///{workdir / 'mailroom.db'}"
    t0 = time.monotonic()
    store = Store.open(url)
    folders = populate(store, {"small": args.items_small, "large": args.items_large})
    store.close()
    print(f"populated {args.items_small} + {args.items_large} items in {time.monotonic() - t0:.0f}s "
          f"({'SQLite' if url.startswith('sqlite') else 'PostgreSQL'})", flush=True)
    env = dict(os.environ)
    ews_port, anchor_port = free_port(), free_port()
    server = start([sys.executable, "-m", "mailroom", "serve", "--data", str(workdir), "--database", url,
                    "--http", f"127.0.0.1:{ews_port}", "--https", "", "--smtp", "", "--submission", "",
                    "--metrics", "", "--workers", str(args.workers)],
                   "EWS  http", env)
    anchor = start([sys.executable, "-m", "bench.anchor", str(anchor_port)], "ready", env)
    try:
        ews_url = f"http://127.0.0.1:{ews_port}/EWS/Exchange.asmx"
        print(f"wrk: 1 thread, {args.connections} connections, {args.seconds}s x {args.rounds} rounds (median)")
        res = {"anchor": measure("anchor (trivial response)", f"http://127.0.0.1:{anchor_port}/EWS/Exchange.asmx",
                                 [get_item_body(folders["small"][1][0])], args, workdir)}
        for size in ("small", "large"):
            folder_id, sample = folders[size]
            n = args.items_small if size == "small" else args.items_large
            res[f"get_{size}"] = measure(f"GetItem ({n} items)", ews_url, [get_item_body(i) for i in sample],
                                         args, workdir)
            res[f"find_{size}"] = measure(f"FindItem page 100 ({n})", ews_url, [find_item_body(folder_id)],
                                          args, workdir)
    except RuntimeError:
        print("the server's last output:\n" + "".join(server.tail.copy()), file=sys.stderr)  # type: ignore[attr-defined]
        raise
    finally:
        server.terminate()
        anchor.terminate()
        server.wait(10)
        anchor.wait(10)
    get_ratio = res["get_small"]["rps"] / res["anchor"]["rps"]
    get_ratio_large = res["get_large"]["rps"] / res["anchor"]["rps"]
    find_ratio = res["find_small"]["rps"] / res["find_large"]["rps"]
    print()
    print(f"GetItem / anchor:             {get_ratio:6.1%} (small folder), {get_ratio_large:6.1%} (large)   "
          f"target >= 40%  {'OK' if min(get_ratio, get_ratio_large) >= 0.4 else 'MISSED'}")
    print(f"FindItem large / small time:  {find_ratio:6.2f}x   target <= 2x  {'OK' if find_ratio <= 2 else 'MISSED'}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
