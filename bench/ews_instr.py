"""In-process cost of EWS requests through ``endpoint.process`` (authentication from the cache,
budget admission and charge, parsing, the access check, the store read, rendering, the envelope;
no HTTP), on the bench's items (``bench/ews.py``, SQLite in a temporary folder). Prints the
wall-clock time per request; under callgrind it switches instrumentation on only for the measured
requests (after the warm-up), so the instruction count is per ``--requests`` requests:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT \\
        .venv/bin/python -m bench.ews_instr [--what getitem|finditem] [--requests N]

``--profile`` prints cProfile's top functions instead.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import os
import pstats
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from mailroom.access.auth import Authenticator
from mailroom.ews import endpoint
from mailroom.store import Store
from mailroom.throttling.throttle import Throttle

from .ews import PASSWORD, find_item_body, get_item_body, populate

USER = "bench@bench.example"


def callgrind(on: bool) -> None:
    """Switch callgrind's instrumentation for this process (nothing when not under callgrind)."""
    if shutil.which("callgrind_control"):
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--what", choices=("getitem", "finditem"), default="getitem")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="cProfile order with --profile (tottime, cumulative)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-instr-"))
    store = Store.open(f"sqlite:///{workdir / 'mailroom.db'}")
    try:
        folder_id, sample = populate(store, {"small": args.items})["small"]
        bodies = [(get_item_body(i) if args.what == "getitem" else find_item_body(folder_id)).encode()
                  for i in sample]
        auth, throttle = Authenticator(store), Throttle(store)
        endpoint.load_operations()
        header = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        def run(n: int) -> None:
            for i in range(n):
                identity = auth.authenticate(header)
                assert identity is not None
                policy = throttle.cached(identity.caller.id) or throttle.load(identity.caller.id)
                ticket = throttle.begin(identity.caller, policy)
                status, _ = endpoint.process(store, identity, bodies[i % len(bodies)], endpoint.Request(ticket=ticket))
                throttle.end(ticket, status)
                assert status == 200

        run(args.warmup)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run, args.requests)
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(40)
            return
        callgrind(True)
        started = time.perf_counter()
        run(args.requests)
        elapsed = time.perf_counter() - started
        callgrind(False)
        print(f"{args.what}: {elapsed / args.requests * 1e6:.1f} us per request ({args.requests} requests)")
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
