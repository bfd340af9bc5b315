"""The audit log: every access to a mailbox by anyone but its owner is recorded (who, as whom, right,
operation, folder/item, result, time, client IP) and searchable with ``mailroom audit search``;
owners' own requests only when ``audit.log_owner_actions`` is on."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mailroom.access.permissions import level_rights
from mailroom.store import Store, ids
from mailroom.store.model import AuditRecord

from .conftest import PASSWORD, RunningServer, new_domain, new_mailbox
from .soap import envelope, post
from .test_cli import fails, ok, table_rows

WIDE = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}


def audit_cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mailroom audit search ARGS --data DATA`` on a console wide enough for one line per record."""
    command = [sys.executable, "-m", "mailroom", "audit", "search", *args, "--data", str(data)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=WIDE, stdin=subprocess.DEVNULL)


def get_inbox(owner_address: str) -> str:
    return ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
            f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{owner_address}</t:EmailAddress>'
            '</t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>')


def test_delegate_and_impersonated_access_is_recorded(server, server_store):
    store = server_store
    domain = new_domain(store)
    owner, dan, svc = (new_mailbox(store, domain, name) for name in ("owner", "dan", "svc"))
    inbox = store.folders.distinguished(owner, "inbox")
    store.permissions.add_delegate(owner, dan, {inbox.id: level_rights("Reviewer", calendar=False)}, False, False)
    store.directory.grant_impersonation(svc.address, "all")

    post(server.ews_url, envelope(get_inbox(owner.address)), owner.address, PASSWORD)  # the owner: not logged
    assert store.audit.search(owner.address) == []

    post(server.ews_url, envelope(get_inbox(owner.address)), dan.address, PASSWORD)
    drafts = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
              f'<t:FolderId Id="{ids.folder_id(owner.guid, store.folders.distinguished(owner, "drafts").id)}"/>'
              '</m:FolderIds></m:GetFolder>')
    post(server.ews_url, envelope(drafts), dan.address, PASSWORD)
    header = ("<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>"
              f"{owner.address}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>")
    post(server.ews_url, envelope(get_inbox(owner.address), header_extra=header), svc.address, PASSWORD)

    records = store.audit.search(owner.address)
    assert [(r.caller, r.right, r.operation, r.result) for r in reversed(records)] == [
        (dan.address, "delegate", "GetFolder", "NoError"),
        (dan.address, "delegate", "GetFolder", "ErrorAccessDenied"),
        (svc.address, "impersonation", "GetFolder", "NoError"),
    ]
    assert {r.client_ip for r in records} == {"127.0.0.1"}
    assert records[-1].folder_id == inbox.id
    assert [r.right for r in store.audit.search(owner.address, right="delegate")] == ["delegate", "delegate"]
    assert [r.caller for r in store.audit.search(owner.address, caller=svc.address)] == [svc.address]
    assert len(store.audit.search(owner.address, limit=1)) == 1
    assert store.audit.search(owner.address, start="2999-01-01T00:00:00Z") == []


def test_owner_actions_are_recorded_when_configured(store_url, tmp_path):
    server = RunningServer(store_url, tmp_path / "data", **{"audit.log_owner_actions": True})
    store = Store.open(store_url, pool_size=1)
    try:
        owner = new_mailbox(store, new_domain(store), "owner")
        post(server.ews_url, envelope(get_inbox(owner.address)), owner.address, PASSWORD)
        [record] = store.audit.search(owner.address)
        assert (record.caller, record.right, record.operation, record.result) == (
            owner.address, "owner", "GetFolder", "NoError")
        assert record.folder_id == store.folders.distinguished(owner, "inbox").id
    finally:
        store.close()
        server.stop()
    assert not server.bad_responses


@pytest.fixture
def audited_data(tmp_path) -> Path:  # noqa: ANN201
    data = tmp_path / "data"
    store = Store.open_data_dir(data)
    record = AuditRecord(time="", caller="", mailbox="olive@example.org", right="delegate", operation="GetItem",
                         result="NoError", client_ip="192.0.2.7", folder_id=5, item_id=9)
    rows = [("2026-01-01T10:00:00Z", "dan@example.org", "delegate"),
            ("2026-01-02T10:00:00Z", "svc@example.org", "impersonation"),
            ("2026-01-03T10:00:00Z", "dan@example.org", "delegate")]
    store.audit.append([replace(record, time=when, caller=who, right=right) for when, who, right in rows])
    store.close()
    return data


def test_audit_search_cli(audited_data):
    rows = table_rows(ok(audit_cli(audited_data, "--mailbox", "Olive@example.org")))
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("2026-01-03T10:00:00Z", "dan@example.org", "delegate"),
        ("2026-01-02T10:00:00Z", "svc@example.org", "impersonation"),
        ("2026-01-01T10:00:00Z", "dan@example.org", "delegate")]
    assert rows[0][4:] == ["GetItem", "5", "9", "NoError", "192.0.2.7"]
    filtered = table_rows(ok(audit_cli(audited_data, "--mailbox", "olive@example.org", "--caller", "dan@example.org",
                                       "--start", "2026-01-01T12:00:00", "--end", "2026-01-04")))
    assert [r[0] for r in filtered] == ["2026-01-03T10:00:00Z"]
    assert [r[1] for r in table_rows(ok(audit_cli(audited_data, "--mailbox", "olive@example.org",
                                                   "--right", "impersonation")))] == ["svc@example.org"]
    assert len(table_rows(ok(audit_cli(audited_data, "--mailbox", "olive@example.org", "--limit", "2")))) == 2
    # An offset is honoured: 11:00+01:00 is 10:00 UTC, so the record at 10:00 is included.
    assert len(table_rows(ok(audit_cli(audited_data, "--mailbox", "olive@example.org",
                                       "--start", "2026-01-03T11:00:00+01:00")))) == 1
    fails(audit_cli(audited_data, "--mailbox", "olive@example.org", "--start", "yesterday"), "error:", "--start")
    fails(audit_cli(audited_data, "--mailbox", "olive@example.org", "--right", "admin"), "error:", "--right")
    assert table_rows(ok(audit_cli(audited_data, "--mailbox", "nobody@example.org"))) == []
