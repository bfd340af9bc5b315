"""Throttling benchmark: does a flooding caller stop a well-behaved one?

    ./dev bench throttling [--seconds S] [--flood-connections N] [--database URL]

The real `mailroom serve` (pinned to core 0) answers GetFolder(inbox) for two callers; load comes
from two wrk processes on core 1: the flooder with N connections, the well-behaved caller with
one. Measured in one run, each for S seconds:

1. anchor: each caller alone, unthrottled (a policy with every value unlimited);
2. the flood unthrottled, the well-behaved caller beside it;
3. the flood under a tight policy (EwsMaxConcurrency 4, EwsMaxBurst 1 s, recharge 10 s per minute,
   cutoff 2 s), the well-behaved caller beside it (it keeps the Global policy).

Prints requests/s served (and refused, for the flooder) and the well-behaved caller's p50/p99
latency, each against the anchor.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from mailroom.access.passwords import hash_password
from mailroom.store import Store

from .ews import ENVELOPE, PASSWORD, free_port, lua_script, start, wrk_command, wrk_result

GET_INBOX = ENVELOPE.format('<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>'
                            '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>')
FLOODER, QUIET = "flood@bench.example", "quiet@bench.example"
UNLIMITED = {"EwsMaxConcurrency": None, "EwsPercentTimeInCAS": None, "EwsFindCountLimit": None,
             "EwsMaxBurst": None, "EwsRechargeRate": None, "EwsCutoffBalance": None, "CPUStartPercent": None}
TIGHT = {"EwsMaxConcurrency": 4, "EwsMaxBurst": 1000, "EwsRechargeRate": 600_000, "EwsCutoffBalance": 2000}


def load(url: str, scripts: dict[str, tuple[Path, int]], seconds: int) -> dict[str, tuple[float, float, float, float]]:
    """Run one wrk per caller at once; per caller (served/s, refused/s, p50 ms, p99 ms)."""
    procs = {name: subprocess.Popen(wrk_command(url, script, seconds, conns), stdout=subprocess.PIPE, text=True)
             for name, (script, conns) in scripts.items()}
    out = {}
    for name, proc in procs.items():
        done, refused, duration, p50, p99 = wrk_result(proc.communicate()[0])
        out[name] = ((done - refused) / duration, refused / duration, p50, p99)
    return out


def show(label: str, name: str, figures: tuple[float, float, float, float], anchor: float) -> None:
    served, refused, p50, p99 = figures
    print(f"  {label:<34} {name:<8} {served:8.0f} served/s ({served / anchor:6.1%} of anchor) "
          f"{refused:7.0f} refused/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--flood-connections", type=int, default=32)
    parser.add_argument("--database", default="", help="store URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed (Debian: apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-"))
    url = args.database or f"sqlite:///{workdir / 'mailroom.db'}"
    store = Store.open(url)
    store.directory.add_domain("bench.example")
    for user in (FLOODER, QUIET):
        store.directory.add_mailbox(user, hash_password(PASSWORD))
    store.throttling.add("Unlimited", UNLIMITED)
    store.throttling.add("Tight", TIGHT)
    store.throttling.assign(FLOODER, "Unlimited")
    config = workdir / "mailroom.toml"  # policies re-read every second, so each phase's applies at once
    config.write_text("[throttling]\npolicy_cache_seconds = 1\npolicy_cache_max_seconds = 1\n")
    port = free_port()
    server = start([sys.executable, "-m", "mailroom", "serve", "--data", str(workdir), "--database", url,
                    "--config", str(config), "--http", f"127.0.0.1:{port}", "--https", "", "--smtp", "",
                    "--submission", "", "--metrics", ""],
                   "EWS  http", dict(os.environ))
    threading.Thread(target=server.stdout.read, daemon=True).start()  # keep its output pipe drained
    ews = f"http://127.0.0.1:{port}/EWS/Exchange.asmx"
    flood = (lua_script([GET_INBOX], workdir, FLOODER), args.flood_connections)
    quiet = (lua_script([GET_INBOX], workdir, QUIET), 1)
    try:
        for user in (FLOODER, QUIET):  # log in once each (password hashing is slow on purpose), then warm up
            requests.post(ews, data=GET_INBOX, auth=(user, PASSWORD), timeout=60).raise_for_status()
        load(ews, {"flooder": flood, "quiet": quiet}, 2)
        print(f"GetFolder(inbox); flooder {args.flood_connections} connections, well-behaved caller 1; "
              f"{args.seconds}s each")
        alone_flood = load(ews, {"flooder": flood}, args.seconds)["flooder"]
        alone_quiet = load(ews, {"quiet": quiet}, args.seconds)["quiet"]
        show("anchor: alone, unthrottled", "flooder", alone_flood, alone_flood[0])
        show("anchor: alone, unthrottled", "quiet", alone_quiet, alone_quiet[0])
        both = load(ews, {"flooder": flood, "quiet": quiet}, args.seconds)
        show("flood unthrottled", "flooder", both["flooder"], alone_flood[0])
        show("flood unthrottled", "quiet", both["quiet"], alone_quiet[0])
        store.throttling.assign(FLOODER, "Tight")
        time.sleep(1.5)  # the server's policy cache lifetime
        both = load(ews, {"flooder": flood, "quiet": quiet}, args.seconds)
        show("flood under policy Tight", "flooder", both["flooder"], alone_flood[0])
        show("flood under policy Tight", "quiet", both["quiet"], alone_quiet[0])
    finally:
        server.terminate()
        server.wait(10)
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
