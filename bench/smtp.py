"""SMTP benchmark: accepted 4 KiB messages per second, with p50/p99 latency (MAIL FROM to the 250
after DATA), at concurrency 1, 10 and 50, for three servers measured in the same run:

- Postfix (Debian's package, a private instance on loopback the bench configures, its queue
  fsynced as by default, delivering into Maildirs at the same time) -- the anchor;
- a bare aiosmtpd server that discards every message -- the ceiling of the SMTP layer;
- mailroom (``mailroom serve`` on a SQLite data folder, inbound listener, delivering into its
  mailboxes).

    ./dev bench smtp [--seconds S] [--rounds R] [--concurrency 1,10,50] [--no-postfix]

The servers run pinned to core 0, the load (smtplib clients, one thread and one SMTP session
per connection, many messages per session) on core 1. Each point is the median of the rounds.
After each point the bench waits (bounded) until every accepted message is in a mailbox and
says how far delivery lagged. Targets: mailroom >= 2x Postfix at concurrency 50 and >= 1x at
1 and 10.
"""

from __future__ import annotations

import argparse
import base64
import os
import pty
import re
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DOMAIN = "bench.example"
SENDER = "load@sender.example"
PASSWORD = "bench-password"
SERVER_CORE, LOAD_CORE = 0, 1
GET_INBOX = (b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
             b'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
             b'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body><m:GetFolder>'
             b'<m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>'
             b'<t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(core: int) -> Callable[[], None] | None:
    """A preexec_fn putting a child on ``core`` (None where there is nothing to pin to)."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def start(cmd: list[str], log: Path, ready: str, timeout: float = 60) -> tuple[subprocess.Popen[bytes], re.Match]:
    """Start ``cmd`` on the server core, its output to ``log``; wait for a line matching ``ready``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=pinned(SERVER_CORE))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(ready, log.read_text(errors="replace"))
        if match:
            return proc, match
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(cmd)} exited ({proc.returncode}):\n{tail}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{' '.join(cmd)} did not become ready in {timeout:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Message:
    """A 4 KiB (``size`` bytes) message whose only change from one send to the next is its
    Message-ID (mailroom and Postfix both recognise a redelivery by it)."""

    def __init__(self, size: int) -> None:
        self.head = (f"From: Load <{SENDER}>\r\nTo: <recipient@{DOMAIN}>\r\nSubject: SMTP benchmark message\r\n"
                     "Date: Sat, 21 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                     "Content-Type: text/plain; charset=us-ascii\r\nMessage-ID: <").encode()
        tail = f"@load.{DOMAIN}>\r\n\r\n".encode()
        room = size - len(self.head) - 32 - len(tail)
        line = b"The quarterly report is attached below; please review it before Monday's meeting.\r\n"
        body = (line * (room // len(line) + 1))[:room - 2] + b"\r\n"
        self.tail = tail + body

    def new(self) -> bytes:
        return self.head + uuid.uuid4().hex.encode() + self.tail


@dataclass
class Point:
    """One measurement: the latencies of the messages whose 250 came inside the window, what
    was accepted in all, refusals and failures by reply."""
    seconds: float
    latencies: list[float] = field(default_factory=list)
    accepted_total: int = 0  # including warm-up: what the server must deliver
    cpu_seconds: float = 0.0  # the server's processes, over the whole point
    refusals: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def cpu_ms_per_message(self) -> float:
        return self.cpu_seconds * 1000 / self.accepted_total if self.accepted_total else float("nan")

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


def load(port: int, concurrency: int, warmup: float, seconds: float, recipients: list[str],
         message: Message) -> Point:
    """``concurrency`` SMTP sessions, each sending messages back to back (MAIL, RCPT, DATA; no
    RSET), for ``warmup`` then ``seconds``."""
    point = Point(seconds)
    lock = threading.Lock()
    begin: list[float] = []
    connected = threading.Barrier(concurrency + 1, action=lambda: begin.append(time.perf_counter()))

    def session(index: int) -> None:
        latencies: list[float] = []
        accepted = 0
        refusals: Counter[str] = Counter()
        try:
            client = smtplib.SMTP("127.0.0.1", port, local_hostname="load.bench.test", timeout=60)
            client.ehlo()
        except (OSError, smtplib.SMTPException) as exc:
            with lock:
                point.refusals[f"connect: {exc}"] += 1
            return
        finally:
            connected.wait()
        start_at, end_at = begin[0] + warmup, begin[0] + warmup + seconds
        n = index
        try:
            while (sent := time.perf_counter()) < end_at:
                n += 1
                try:
                    client.sendmail(SENDER, [recipients[n % len(recipients)]], message.new())
                except smtplib.SMTPResponseException as exc:
                    refusals[f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')[:60]}"] += 1
                    continue
                except smtplib.SMTPRecipientsRefused as exc:
                    refusals.update(f"{code} {text.decode(errors='replace')[:60]}"
                                    for code, text in exc.recipients.values())
                    continue
                done = time.perf_counter()
                accepted += 1
                if start_at <= done <= end_at:
                    latencies.append(done - sent)
            client.quit()
        except (OSError, smtplib.SMTPException) as exc:  # the session broke: counted, and it ends
            refusals[f"session: {exc}"[:80]] += 1
        finally:
            with lock:
                point.latencies.extend(latencies)
                point.accepted_total += accepted
                point.refusals.update(refusals)

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    connected.wait(120)
    for thread in threads:
        thread.join(warmup + seconds + 120)
    return point


def tree_cpu(pid: int) -> float:
    """CPU seconds used by process ``pid``, its live children and its reaped ones."""
    def times(stat: str) -> tuple[int, list[int]]:
        fields = stat.rpartition(")")[2].split()
        return int(fields[1]), [int(v) for v in fields[11:15]]  # ppid; utime, stime, cutime, cstime

    ticks = sum(times(Path(f"/proc/{pid}/stat").read_text())[1])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid, values = times((entry / "stat").read_text())
            except OSError:
                continue
            if ppid == pid:
                ticks += sum(values)
    return ticks / os.sysconf("SC_CLK_TCK")


class Target(ABC):
    """A server under load: its SMTP port, its main process and how many messages its mailboxes
    hold so far (None: it keeps nothing)."""
    name = ""
    port = 0

    @abstractmethod
    def pid(self) -> int:
        """The server's main process (its CPU use is counted with its children's)."""

    def cpu(self) -> float:
        return tree_cpu(self.pid())

    def delivered(self) -> int | None:
        return None

    @abstractmethod
    def close(self) -> None:
        """Stop the server."""


class ServerProcess(Target):
    """A server that is one process the bench started."""
    proc: subprocess.Popen[bytes]

    def pid(self) -> int:
        return self.proc.pid

    def close(self) -> None:
        stop(self.proc)


class Ceiling(ServerProcess):
    name = "aiosmtpd (discard)"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.proc, _ = start([sys.executable, "-m", "bench.smtp_ceiling", str(self.port)], workdir / "ceiling.log",
                             "ready")


class Mailroom(ServerProcess):
    """``mailroom serve`` on its own SQLite data folder, domain and mailboxes made with the CLI;
    delivered mail is counted through EWS (GetFolder TotalCount of each Inbox)."""
    name = "mailroom"

    def __init__(self, workdir: Path, mailboxes: list[str]) -> None:
        data = workdir / "mailroom"
        self.mailboxes = mailboxes
        cli = [sys.executable, "-m", "mailroom"]
        subprocess.run([*cli, "domain", "add", DOMAIN, "--data", str(data)], check=True, capture_output=True)
        for address in mailboxes:
            subprocess.run([*cli, "mailbox", "add", address, "--password", PASSWORD, "--data", str(data)],
                           check=True, capture_output=True)
        serve = [*cli, "serve", "--data", str(data), "--http", f"127.0.0.1:{free_port()}", "--https", "",
                 "--smtp", f"127.0.0.1:{free_port()}"]
        usage = subprocess.run([*cli, "serve", "--help"], capture_output=True, text=True,
                               env={**os.environ, "COLUMNS": "200"}).stdout
        for flag in ("--submission", "--metrics"):  # other listeners, kept as configured by default but off
            if flag in usage:                       # their fixed default ports, which may be taken
                serve += [flag, f"127.0.0.1:{free_port()}"]
        self.proc, ready = start(serve, workdir / "mailroom.log", r"smtp://127\.0\.0\.1:(\d+) \(inbound\)")
        self.port = int(ready.group(1))
        self.ews = re.findall(r"EWS\s+(http://\S+)", (workdir / "mailroom.log").read_text())[0]

    def delivered(self) -> int:
        return sum(self._inbox_count(address) for address in self.mailboxes)

    def _inbox_count(self, address: str) -> int:
        token = base64.b64encode(f"{address}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(self.ews, data=GET_INBOX, headers={
            "Content-Type": "text/xml; charset=utf-8", "Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            body = response.read()
        match = re.search(rb"<(?:\w+:)?TotalCount>(\d+)<", body)
        if not match:
            raise RuntimeError(f"no TotalCount in GetFolder's answer for {address}: {body[:500]!r}")
        return int(match.group(1))


class Postfix(Target):
    """A private Postfix instance: its own config, queue and data directories under the bench's
    temporary folder, smtpd on a loopback port, virtual(8) delivery into one Maildir per
    mailbox. Started with ``postfix -c DIR start`` on the server core; never a system service."""
    name = "Postfix"
    binary = "/usr/sbin/postfix"

    def __init__(self, workdir: Path, mailboxes: list[str]) -> None:
        root = workdir / "postfix"
        self.conf, self.mail = root / "etc", root / "mail"
        self.port = free_port()
        for sub in ("etc", "spool", "lib", "mail"):
            (root / sub).mkdir(parents=True)
        for path in (workdir, root):
            path.chmod(0o755)  # the postfix user and virtual(8) reach their directories through these
        shutil.chown(root / "lib", "postfix")
        shutil.chown(self.mail, "nobody", "nogroup")
        self.mailboxes = [address.partition("@")[0] for address in mailboxes]
        (self.conf / "vmailbox").write_text("".join(f"{a} {a.partition('@')[0]}/\n" for a in mailboxes))
        (self.conf / "main.cf").write_text(MAIN_CF.format(root=root, uid=_uid("nobody")))
        (self.conf / "master.cf").write_text(MASTER_CF.format(port=self.port))
        self.log = root / "maillog"
        output = self._postfix("start")
        deadline = time.monotonic() + 30
        while not self._listening():
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"Postfix did not start listening: {output}\n{self._log_tail()}")
            time.sleep(0.2)

    def _postfix(self, command: str) -> str:
        """Run ``postfix -c CONF command`` with a terminal for its messages (without one it
        only logs to syslog, which a container may not have)."""
        master, child = pty.openpty()
        result = subprocess.run([self.binary, "-c", str(self.conf), command], stdin=subprocess.DEVNULL, stdout=child,
                                stderr=child, preexec_fn=pinned(SERVER_CORE))
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        output = b"".join(chunks).decode(errors="replace").strip()
        if result.returncode:
            raise RuntimeError(f"postfix {command} failed ({result.returncode}): {output}\n{self._log_tail()}")
        return output

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def pid(self) -> int:
        return int((self.conf.parent / "spool" / "pid" / "master.pid").read_text())

    def delivered(self) -> int:
        return sum(len(os.listdir(path)) for user in self.mailboxes for path in
                   (self.mail / user / "new", self.mail / user / "cur") if path.exists())

    def close(self) -> None:
        try:
            self._postfix("stop")
        except RuntimeError as exc:
            print(f"warning: {exc}", file=sys.stderr)

    @classmethod
    def available(cls) -> str | None:
        """Why the anchor can't run here (None: it can), installing Debian's package if missing."""
        if os.geteuid() != 0:
            return "Postfix needs root (its master runs as root and drops to the postfix user)"
        if not Path(cls.binary).exists():
            print("installing Debian's postfix package (not configured as a system mail server) ...", flush=True)
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            preseed = b"postfix postfix/main_mailer_type select No configuration\n"
            subprocess.run(["debconf-set-selections"], input=preseed, check=False, env=env)
            install = ["apt-get", "install", "-y", "-q", "postfix"]
            if subprocess.run(install, env=env, capture_output=True).returncode:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
                result = subprocess.run(install, env=env, capture_output=True, text=True)
                if result.returncode:
                    return f"apt-get install postfix failed: {result.stderr.strip()[-500:]}"
        return None


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


MAIN_CF = """\
# A private instance for the benchmark: Postfix's defaults except where a line here says.
compatibility_level = 3.6
queue_directory = {root}/spool
data_directory = {root}/lib
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
alias_maps =
alias_database =
virtual_mailbox_domains = bench.example
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = texthash:{root}/etc/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
biff = no
"""

# Debian's master.cf services, not chrooted (the queue is not under /var/spool/postfix), smtpd on
# the bench's loopback port.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix n - n 60 1 pickup
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp       unix - - n - - smtp
relay      unix - - n - - smtp
showq      unix n - n - - showq
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
local      unix - n n - - local
virtual    unix - n n - - virtual
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


@dataclass
class Drain:
    """How delivery kept up after one point."""
    accepted: int
    delivered_at_end: int
    delivered: int
    seconds: float


def drain(target: Target, accepted: int, timeout: float) -> Drain | None:
    """Wait (at most ``timeout``) until ``target``'s mailboxes hold ``accepted`` messages."""
    first = target.delivered()
    if first is None:
        return None
    began = time.monotonic()
    count = first
    while count < accepted and time.monotonic() - began < timeout:
        time.sleep(0.5)
        count = target.delivered() or 0
    return Drain(accepted, first, count, time.monotonic() - began)


def median_point(points: list[Point]) -> tuple[float, float, float, float]:
    return (statistics.median(p.rate for p in points), statistics.median(p.percentile(0.50) for p in points),
            statistics.median(p.percentile(0.99) for p in points),
            statistics.median(p.cpu_ms_per_message for p in points))


def report(targets: list[Target], concurrencies: list[int], results: dict[tuple[str, int], list[Point]],
           skipped: str | None) -> None:
    names = [t.name for t in targets]
    print()
    print(f"{'':>4} " + "".join(f"| {n:^34} " for n in names))
    print(f"{'conc':>4} " + "".join(f"| {'msg/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms':>7}  " for _ in names))
    medians = {(n, c): median_point(results[n, c]) for n in names for c in concurrencies}
    for c in concurrencies:
        print(f"{c:>4} " + "".join("| {:7.0f} {:8.2f} {:8.2f} {:7.2f}  ".format(*medians[n, c]) for n in names))
    print("cpu ms: CPU time of the server's processes (delivery included) per accepted message")
    print()
    for c in concurrencies:
        mine = medians["mailroom", c][0]
        line = f"concurrency {c:>3}:  mailroom / ceiling {mine / medians[Ceiling.name, c][0]:6.2f}"
        if skipped is None:
            need = 2.0 if c >= 50 else 1.0
            ratio = mine / medians[Postfix.name, c][0]
            cpu = medians["mailroom", c][3] / medians[Postfix.name, c][3]
            line += (f"   mailroom / Postfix {ratio:6.2f}  target >= {need:.1f}  {'OK' if ratio >= need else 'MISSED'}"
                     f"   (CPU per message {cpu:.1f}x Postfix's)")
        print(line)
    if skipped is not None:
        print(f"\n!!! NO POSTFIX ANCHOR: {skipped}. The targets (vs Postfix) were not measured. !!!")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, default=1, help="unmeasured seconds before each point")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,10,50", help="comma-separated connection counts")
    parser.add_argument("--size", type=int, default=4096, help="message size in bytes")
    parser.add_argument("--mailboxes", type=int, default=10, help="recipients the messages rotate over")
    parser.add_argument("--drain-timeout", type=float, default=120,
                        help="longest wait after a point for delivery to catch up")
    parser.add_argument("--no-postfix", action="store_true", help="skip the Postfix anchor")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers are stopped on the way out
    workdir = Path(tempfile.mkdtemp(prefix="mailroom-bench-smtp-"))
    mailboxes = [f"user{i}@{DOMAIN}" for i in range(args.mailboxes)]
    targets: list[Target] = []
    skipped = "--no-postfix given" if args.no_postfix else Postfix.available()
    try:
        targets.append(Ceiling(workdir))
        if skipped is None:
            try:
                targets.append(Postfix(workdir, mailboxes))
            except (RuntimeError, OSError, KeyError) as exc:
                skipped = f"Postfix could not be started: {exc}"
        if skipped is not None:
            print(f"!!! skipping the Postfix anchor: {skipped} !!!", flush=True)
        targets.append(Mailroom(workdir, mailboxes))
        run(targets, concurrencies, args, mailboxes, skipped)
    finally:
        for target in targets:
            target.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run(targets: list[Target], concurrencies: list[int], args: argparse.Namespace, mailboxes: list[str],
        skipped: str | None) -> None:
    if pinned(LOAD_CORE) is not None:
        os.sched_setaffinity(0, {LOAD_CORE})
    message = Message(args.size)
    print(f"{os.cpu_count()} cores; servers on core {SERVER_CORE}, load on core {LOAD_CORE}; {args.size}-byte "
          f"messages to {len(mailboxes)} mailboxes; {args.warmup:g}s warm-up + {args.seconds:g}s x {args.rounds} "
          f"rounds per point (median); load average {os.getloadavg()[0]:.2f} at start", flush=True)
    results: dict[tuple[str, int], list[Point]] = {(t.name, c): [] for t in targets for c in concurrencies}
    accepted = {t.name: 0 for t in targets}
    lags: dict[str, list[Drain]] = {t.name: [] for t in targets}
    for round_no in range(1, args.rounds + 1):
        for c in concurrencies:
            for target in targets:
                cpu, load_cpu, wall = target.cpu(), time.process_time(), time.monotonic()
                point = load(target.port, c, args.warmup, args.seconds, mailboxes, message)
                point.cpu_seconds = target.cpu() - cpu
                load_share = (time.process_time() - load_cpu) / (time.monotonic() - wall)
                results[target.name, c].append(point)
                accepted[target.name] += point.accepted_total
                lag = drain(target, accepted[target.name], args.drain_timeout)
                line = (f"  round {round_no} c={c:<3} {target.name:<19} {point.rate:8.0f} msg/s   "
                        f"p50 {point.percentile(0.5):7.2f} ms   p99 {point.percentile(0.99):7.2f} ms   "
                        f"server cpu {point.cpu_ms_per_message:5.2f} ms/msg   load generator busy {load_share:4.0%}")
                if lag is not None:
                    lags[target.name].append(lag)
                    line += (f"   in mailboxes at end of load {lag.delivered_at_end}/{lag.accepted}, "
                             f"all after {lag.seconds:.1f}s" if lag.delivered >= lag.accepted else
                             f"   NOT DELIVERED: {lag.accepted - lag.delivered} of {lag.accepted}")
                if point.refusals:
                    line += f"   refused: {dict(point.refusals)}"
                print(line, flush=True)
    report(targets, concurrencies, results, skipped)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    for target in targets:
        if lags[target.name]:
            last = lags[target.name][-1]
            worst = max(d.accepted - d.delivered_at_end for d in lags[target.name])
            verdict = "all delivered" if last.delivered == last.accepted else "NOT ALL DELIVERED"
            print(f"{target.name}: accepted {last.accepted}, in mailboxes {last.delivered} ({verdict}); "
                  f"largest backlog when a load ended: {worst}; longest catch-up "
                  f"{max(d.seconds for d in lags[target.name]):.1f}s")


if __name__ == "__main__":
    main()
