"""In-process cost of local delivery: ``deliver_batch`` of the SMTP bench's 4 KiB message to one
mailbox (SQLite in a temporary folder), in batches of ``--batch``. Prints the CPU and wall-clock
time per message; under callgrind it switches instrumentation on only for the measured messages
(after the warm-up), so the instruction count is per ``--messages`` messages:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUT \\
        .venv/bin/python -m bench.deliver_instr [--messages 200] [--batch 8]

``--profile`` prints cProfile's top functions instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path

from mailroom.access.passwords import hash_password
from mailroom.store import Store
from mailroom.transport.local import LocalMessage, deliver_batch

from .ews_instr import callgrind
from .smtp import DOMAIN, Message

RECIPIENT = f"recipient@{DOMAIN}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=80)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-deliver-"))
    store = Store.open(f"sqlite:///{workdir / 'mailroom.db'}")
    try:
        store.directory.add_domain(DOMAIN)
        store.directory.add_mailbox(RECIPIENT, hash_password("unused"), "Recipient")
        message = Message(4096)

        def run(count: int) -> None:
            for _ in range(0, count, args.batch):
                deliver_batch(store, [LocalMessage(message.new(), [RECIPIENT]) for _ in range(args.batch)])

        run(args.warmup)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run, args.messages)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
            return
        callgrind(True)
        started, cpu = time.perf_counter(), time.process_time()
        run(args.messages)
        callgrind(False)
        print(f"{(time.process_time() - cpu) / args.messages * 1e6:.0f} µs CPU, "
              f"{(time.perf_counter() - started) / args.messages * 1e6:.0f} µs wall per message "
              f"(batches of {args.batch})")
    finally:
        store.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
