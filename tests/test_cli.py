"""The ``mailroom`` command, run for real as a subprocess against a temporary data folder."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from mailroom.access.passwords import verify_password
from mailroom.store import Store
from mailroom.store.engine import sqlite_url

from .soap import envelope, post

ENV = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1"}


def mailroom(*args: str, data: Path | None = None, stdin: str | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mailroom", *args, *(["--data", str(data)] if data else [])]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd, env=ENV,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """A non-zero exit whose error message (on stderr) has every one of ``words``."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    return result.stderr


def table_rows(output: str) -> list[list[str]]:
    """The cells of each body row of a rich table."""
    return [[cell.strip() for cell in line.strip()[1:-1].split("│")] for line in output.splitlines()
            if line.startswith("│")]


def test_domains(tmp_path):
    data = tmp_path / "data"
    assert "domain example.org added" in ok(mailroom("domain", "add", "Example.ORG", data=data))
    ok(mailroom("domain", "add", "example.net", data=data))
    listed = ok(mailroom("domain", "list", data=data))
    assert "Domain" in listed.splitlines()[1]
    assert [row[0] for row in table_rows(listed)] == ["example.net", "example.org"]
    fails(mailroom("domain", "add", "example.org", data=data), "error:", "example.org", "already exists")
    fails(mailroom("domain", "add", "not a domain", data=data), "error:", "not a domain name")
    ok(mailroom("domain", "remove", "example.net", data=data))
    assert [row[0] for row in table_rows(ok(mailroom("domain", "list", data=data)))] == ["example.org"]
    fails(mailroom("domain", "remove", "example.net", data=data), "error:", "no domain example.net")


def test_mailboxes(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    added = ok(mailroom("mailbox", "add", "Alice@Example.org", "--password-stdin", "--name", "Alice Example",
                        data=data, stdin="first password\n"))
    assert "alice@example.org" in added
    ok(mailroom("mailbox", "add", "bob@example.org", "--password", "pw", data=data))
    ok(mailroom("mailbox", "alias", "alice@example.org", "ali@example.org", data=data))
    rows = table_rows(ok(mailroom("mailbox", "list", data=data)))
    assert rows == [["alice@example.org", "Alice Example", "DB01", "ali@example.org"],
                    ["bob@example.org", "bob", "DB01", ""]]

    ok(mailroom("mailbox", "set-password", "ali@example.org", "--password-stdin", data=data,
                stdin="second password\n"))
    store = Store.open(sqlite_url(data), pool_size=1)
    try:
        _, stored = store.directory.password_hash("alice@example.org")
        assert verify_password(stored, "second password") and not verify_password(stored, "first password")
    finally:
        store.close()

    fails(mailroom("mailbox", "add", "carol@example.com", "--password", "pw", data=data),
          "error:", "example.com", "not an accepted domain")
    fails(mailroom("mailbox", "add", "bob@example.org", "--password", "pw", data=data), "error:", "already in use")
    fails(mailroom("mailbox", "add", "dave@example.org", "--password-stdin", data=data, stdin="\n"),
          "error:", "password must not be empty")
    fails(mailroom("mailbox", "set-password", "nobody@example.org", "--password", "x", data=data),
          "error:", "no mailbox nobody@example.org")
    fails(mailroom("mailbox", "alias", "bob@example.org", "ali@example.org", data=data), "error:", "already in use")

    ok(mailroom("mailbox", "alias", "alice@example.org", "ali@example.org", "--remove", data=data))
    assert table_rows(ok(mailroom("mailbox", "list", data=data)))[0][3] == ""
    refused = mailroom("mailbox", "remove", "bob@example.org", data=data)  # asks, and no one answers
    assert refused.returncode != 0
    ok(mailroom("mailbox", "remove", "bob@example.org", "--yes", data=data))
    assert [row[0] for row in table_rows(ok(mailroom("mailbox", "list", data=data)))] == ["alice@example.org"]
    fails(mailroom("mailbox", "remove", "bob@example.org", "--yes", data=data), "error:", "no mailbox")


def test_db_upgrade(tmp_path, pg_url):
    data = tmp_path / "fresh"
    out = ok(mailroom("db", "upgrade", data=data))
    assert "sqlite" in out and "revision 0004 " in out
    assert (data / "mailroom.db").exists()
    assert ok(mailroom("db", "upgrade", data=data)) == out  # idempotent
    fails(mailroom("db", "upgrade", "--database", "mysql://nowhere/x"), "error:", "unsupported database URL")
    if pg_url is not None:
        assert "postgresql" in ok(mailroom("db", "upgrade", "--database", pg_url))


def test_config_file_with_a_relative_data_dir(tmp_path):
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "mailroom.toml").write_text('data_dir = "state"\n\n[ews]\nworkers = 2\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    ok(mailroom("domain", "add", "example.org", "--config", str(conf / "mailroom.toml"), cwd=elsewhere))
    assert (conf / "state" / "mailroom.db").exists()
    assert not (elsewhere / "state").exists() and not (elsewhere / "data").exists()
    listed = ok(mailroom("domain", "list", "--config", "../etc/mailroom.toml", cwd=elsewhere))
    assert [row[0] for row in table_rows(listed)] == ["example.org"]


@pytest.mark.parametrize(("text", "words"), [
    ("[ews]\nbogus = 1\n", ["ews.bogus", "unknown setting"]),
    ('colour = "blue"\n', ["colour", "unknown setting"]),
    ('[ews]\nworkers = "many"\n', ["ews.workers", "int"]),
    ("data_dir = \n", []),
])
def test_config_errors_name_the_file(tmp_path, text, words):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    fails(mailroom("domain", "list", "--config", str(config)), "error:", str(config), *words)
    fails(mailroom("serve", "--config", str(config)), "error:", str(config), *words)


def _read_urls(process: subprocess.Popen[str], count: int, timeout: float = 30) -> list[str]:
    """The URLs ``serve`` prints once it is ready."""
    urls: list[str] = []
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.split()[:1] in (["EWS"], ["SMTP"]):
                urls.append(line.split()[1])
                if len(urls) == count:
                    break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    assert len(urls) == count, "".join(lines)
    return urls


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_urls_when_ready_and_stops_cleanly(tmp_path, stop):
    data = tmp_path / "data"
    command = [sys.executable, "-m", "mailroom", "serve", "--data", str(data), "--http", "127.0.0.1:0",
               "--https", "127.0.0.1:0", "--smtp", "127.0.0.1:0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        http_url, https_url, smtp_url = _read_urls(process, 3)
        assert smtp_url.startswith("smtp://127.0.0.1:") and not smtp_url.endswith(":0")
        host, port = smtp_url.removeprefix("smtp://").split(":")
        with smtplib.SMTP(host, int(port), timeout=30) as smtp:
            assert smtp.ehlo()[0] == 250  # listening, on the port it printed
        assert http_url.startswith("http://127.0.0.1:") and https_url.startswith("https://127.0.0.1:")
        assert http_url.endswith("/EWS/Exchange.asmx") and https_url.endswith("/EWS/Exchange.asmx")
        assert not http_url.startswith("http://127.0.0.1:0/")
        response = post(http_url, envelope("<m:GetFolder/>"), None, None)
        assert response.status_code == 401  # listening: it asks for credentials
        response = requests.post(https_url, data=envelope("<m:GetFolder/>"), timeout=30,
                                 verify=str(data / "tls" / "cert.pem"))  # the certificate it made is valid
        assert response.status_code == 401
    finally:
        started = time.monotonic()
        process.send_signal(stop)
        code = process.wait(30)
    assert code == 0, process.stderr.read()  # type: ignore[union-attr]
    assert time.monotonic() - started < 15


def test_serve_with_http_only_and_a_busy_port(tmp_path):
    data = tmp_path / "data"
    command = [sys.executable, "-m", "mailroom", "serve", "--data", str(data), "--http", "127.0.0.1:0",
               "--https", "", "--smtp", ""]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        (url,) = _read_urls(first, 1)
        assert not (data / "tls").exists()  # no HTTPS listener, no certificate
        busy = url.split("/")[2]
        second = mailroom("serve", "--data", str(tmp_path / "other"), "--http", busy, "--https", "", "--smtp", "")
        fails(second, "error:")
        assert post(url, envelope("<m:GetFolder/>"), None, None).status_code == 401  # the first one still serves
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
