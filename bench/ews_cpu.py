"""Server CPU time per EWS request: the real ``mailroom serve`` and the anchor (``bench/anchor.py``)
in their own processes, each loaded in turn by wrk (8 connections, as ``bench/ews.py``), with each
server's CPU time (all its threads, from /proc) divided by the requests it answered. This depends
much less than requests/s on what else a shared machine is doing (a busy machine still makes every
figure larger, the anchor's too), so compare ratios: GetItem against the anchor measured in the
same run, or before against after.

    python -m bench.ews_cpu [--items N] [--seconds S] [--rounds R] [--what getitem,finditem]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from mailroom.store import Store

from .ews import (
    PASSWORD,
    find_item_body,
    free_port,
    get_item_body,
    lua_script,
    populate,
    start,
    wrk_command,
    wrk_result,
)

USER = "bench@bench.example"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request(pid: int, url: str, script: Path, seconds: int, connections: int) -> float:
    """Server CPU microseconds per answered request over one wrk run."""
    before = cpu_seconds(pid)
    out = subprocess.run(wrk_command(url, script, seconds, connections), capture_output=True, text=True,
                         check=True).stdout
    used = cpu_seconds(pid) - before
    done, errors, _, _, _ = wrk_result(out)
    if errors:
        raise RuntimeError(f"{errors} non-2xx answers")
    return used / done * 1e6


def login(url: str, body: str) -> None:
    """One request first, so that wrk's connections find the credentials cached."""
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(url, body.encode(), {"Content-Type": "text/xml; charset=utf-8",
                                                          "Authorization": f"Basic {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--what", default="getitem,finditem")
    parser.add_argument("--profile", default="", help="also record the server with py-spy into PREFIX-WHAT.txt "
                                                      "(collapsed stacks) during one more run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-cpu-"))
    url = f"sqlite:///{workdir / 'mailroom.db'}"
    store = Store.open(url)
    folder_id, sample = populate(store, {"small": args.items})["small"]
    store.close()
    port, anchor_port = free_port(), free_port()
    env = dict(os.environ)
    # Only the EWS listener: the others have fixed default ports another process may hold.
    server = start([sys.executable, "-m", "mailroom", "serve", "--data", str(workdir), "--database", url,
                    "--http", f"127.0.0.1:{port}", "--https", "", "--smtp", "", "--submission", "", "--metrics", ""],
                   "EWS  http", env)
    anchor = start([sys.executable, "-m", "bench.anchor", str(anchor_port)], "ready", env)
    ews_url = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"
    get_items = [get_item_body(i) for i in sample]
    targets = {"anchor": (anchor.pid, f"http://127.0.0.1:{anchor_port}/EWS/Exchange.asmx", get_items[:1]),
               "getitem": (server.pid, ews_url, get_items),
               "finditem": (server.pid, ews_url, [find_item_body(folder_id)])}
    chosen = ["anchor", *args.what.split(",")]
    try:
        login(ews_url, get_items[0])
        scripts = {what: lua_script(targets[what][2], workdir) for what in chosen}
        runs: dict[str, list[float]] = {what: [] for what in chosen}
        for what in chosen:  # warm up
            per_request(targets[what][0], targets[what][1], scripts[what], 2, args.connections)
        for _ in range(args.rounds):  # the targets take turns, so a change in background load hits all alike
            for what in chosen:
                runs[what].append(per_request(targets[what][0], targets[what][1], scripts[what], args.seconds,
                                              args.connections))
        for what in chosen:
            cost = statistics.median(runs[what])
            print(f"{what:<9} server CPU per request {cost:8.1f} us, {cost / statistics.median(runs['anchor']):5.1f}x "
                  f"the anchor's (rounds: {', '.join(f'{r:.1f}' for r in runs[what])})", flush=True)
        if args.profile:
            for what in chosen[1:]:
                spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--nonblocking", "--gil", "-r", "250",
                                        "-o", f"{args.profile}-{what}.txt", "--pid", str(server.pid)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                per_request(server.pid, ews_url, scripts[what], args.seconds, args.connections)
                spy.send_signal(signal.SIGINT)
                spy.wait(30)
    finally:
        for proc in (server, anchor):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
