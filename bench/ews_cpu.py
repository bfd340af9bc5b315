"""Server CPU time per EWS request: the real ``mailroom serve`` in its own process, loaded by wrk
(8 connections, as ``bench/ews.py``), with the server's CPU time (all its threads, from /proc)
divided by the requests answered. Unlike requests/s this hardly depends on what else the machine
is doing, so before/after ratios can be taken on a shared machine.

    python -m bench.ews_cpu [--items N] [--seconds S] [--rounds R] [--what getitem,finditem]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
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
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-cpu-"))
    url = f"sqlite:///{workdir / 'mailroom.db'}"
    store = Store.open(url)
    folder_id, sample = populate(store, {"small": args.items})["small"]
    store.close()
    port = free_port()
    server = start([sys.executable, "-m", "mailroom", "serve", "--data", str(workdir), "--database", url,
                    "--http", f"127.0.0.1:{port}", "--https", ""], "EWS  http", dict(os.environ))
    ews_url = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"
    bodies = {"getitem": [get_item_body(i) for i in sample], "finditem": [find_item_body(folder_id)]}
    try:
        login(ews_url, bodies["getitem"][0])
        for what in args.what.split(","):
            script = lua_script(bodies[what], workdir)
            per_request(server.pid, ews_url, script, 2, args.connections)  # warm up
            runs = [per_request(server.pid, ews_url, script, args.seconds, args.connections)
                    for _ in range(args.rounds)]
            print(f"{what}: server CPU per request {statistics.median(runs):8.1f} us "
                  f"(rounds: {', '.join(f'{r:.1f}' for r in runs)})", flush=True)
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
