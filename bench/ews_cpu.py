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


def serve(url: str, workdir: Path, code: str = "") -> tuple[subprocess.Popen[str], str]:
    """``mailroom serve`` on the store at ``url`` (its EWS listener only: the others have fixed
    default ports another process may hold), from the checkout ``code`` when given (``-P``: not
    from the current folder); returns the process and its EWS URL."""
    port = free_port()
    data = workdir / f"data-{port}"
    env = {**os.environ, "PYTHONPATH": code} if code else dict(os.environ)
    cmd = [sys.executable, *(["-P"] if code else []), "-m", "mailroom", "serve", "--data", str(data),
           "--database", url, "--http", f"127.0.0.1:{port}", "--https", "", "--smtp", "", "--submission", "",
           "--metrics", ""]
    return start(cmd, "EWS  http", env), f"http://127.0.0.1:{port}/EWS/Exchange.asmx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--what", default="getitem,finditem")
    parser.add_argument("--baseline", default="", help="also measure a server run from this checkout (e.g. a "
                                                       "git worktree of main) on the same store, taking turns")
    parser.add_argument("--profile", default="", help="also record the server with py-spy into PREFIX-WHAT.txt "
                                                      "(collapsed stacks) during one more run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-cpu-"))
    url = f"sqlite:///{workdir / 'mailroom.db'}"
    store = Store.open(url)
    folder_id, sample = populate(store, {"small": args.items})["small"]
    store.close()
    anchor_port = free_port()
    anchor = start([sys.executable, "-m", "bench.anchor", str(anchor_port)], "ready", dict(os.environ))
    servers = {"": serve(url, workdir)}
    if args.baseline:
        servers["baseline "] = serve(url, workdir, args.baseline)
    get_items = [get_item_body(i) for i in sample]
    bodies = {"getitem": get_items, "finditem": [find_item_body(folder_id)]}
    targets = {"anchor": (anchor.pid, f"http://127.0.0.1:{anchor_port}/EWS/Exchange.asmx", get_items[:1])}
    for label, (proc, ews_url) in servers.items():
        login(ews_url, get_items[0])
        targets.update({label + what: (proc.pid, ews_url, bodies[what]) for what in args.what.split(",")})
    try:
        runs = measure(targets, workdir, args)
        for what, costs in runs.items():
            cost = statistics.median(costs)
            print(f"{what:<17} server CPU per request {cost:8.1f} us, {cost / statistics.median(runs['anchor']):5.1f}x "
                  f"the anchor's (rounds: {', '.join(f'{r:.1f}' for r in costs)})", flush=True)
        for what in args.what.split(",") if args.baseline else []:
            ratio = statistics.median(runs[what]) / statistics.median(runs["baseline " + what])
            print(f"{what}: new / baseline {ratio:.3f}", flush=True)
        if args.profile:
            profile(targets, args, workdir)
    finally:
        for proc in (anchor, *(p for p, _ in servers.values())):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


Targets = dict[str, tuple[int, str, list[str]]]  # name -> (server pid, URL, request bodies)


def measure(targets: Targets, workdir: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU microseconds per request of each target, per round; the targets take turns within each
    round (in alternating order), so a change in background load hits all alike."""
    scripts = {what: lua_script(bodies, workdir) for what, (_, _, bodies) in targets.items()}
    runs: dict[str, list[float]] = {what: [] for what in targets}
    order = list(targets)
    for what in order:  # warm up
        per_request(targets[what][0], targets[what][1], scripts[what], 2, args.connections)
    for round_ in range(args.rounds):
        for what in order if round_ % 2 == 0 else reversed(order):
            pid, url, _ = targets[what]
            runs[what].append(per_request(pid, url, scripts[what], args.seconds, args.connections))
    return runs


def profile(targets: Targets, args: argparse.Namespace, workdir: Path) -> None:
    """One more run of each new-code target under py-spy (the samples holding the interpreter)."""
    for what in args.what.split(","):
        pid, url, bodies = targets[what]
        spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--nonblocking", "--gil", "-r", "250",
                                "-o", f"{args.profile}-{what}.txt", "--pid", str(pid)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        per_request(pid, url, lua_script(bodies, workdir), args.seconds, args.connections)
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


if __name__ == "__main__":
    main()
