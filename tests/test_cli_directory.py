"""The directory from the command line: directory attributes (mailbox set / show), resource
mailboxes (mailbox add --room / --equipment) and groups (group add|list|remove, group member)."""

from __future__ import annotations

from mailroom.store import Store
from mailroom.store.engine import sqlite_url

from .test_cli import fails, mailroom, ok, table_rows


def _lines(output: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def test_directory_attributes(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    ok(mailroom("mailbox", "add", "alice@example.org", "--password", "pw", data=data))
    ok(mailroom("mailbox", "add", "boss@example.org", "--password", "pw", "--name", "The Boss", data=data))
    ok(mailroom("mailbox", "set", "alice@example.org", "--display-name", "Alice Liddell", "--department", "Sales",
                "--title", "Account manager", "--manager", "boss@example.org", "--office", "B-204", "--company",
                "Contoso", "--phone", "business=+1 555 0100", "--phone", "Mobile=+1 555 0199", "--phone",
                "CarPhone=+1 555 0123", "--city", "Springfield", "--first-name", "Alice", data=data))
    shown = _lines(ok(mailroom("mailbox", "show", "alice@example.org", data=data)))
    assert shown["DisplayName"] == "Alice Liddell" and shown["Kind"] == "user"
    assert (shown["Department"], shown["JobTitle"], shown["OfficeLocation"], shown["CompanyName"]) == (
        "Sales", "Account manager", "B-204", "Contoso")
    assert (shown["BusinessPhone"], shown["MobilePhone"], shown["CarPhone"]) == (
        "+1 555 0100", "+1 555 0199", "+1 555 0123")
    assert (shown["Manager"], shown["City"], shown["GivenName"]) == ("boss@example.org", "Springfield", "Alice")
    assert _lines(ok(mailroom("mailbox", "show", "boss@example.org", data=data)))["DirectReports"] == \
        "alice@example.org"

    ok(mailroom("mailbox", "set", "alice@example.org", "--department", "", "--phone", "mobile=", "--manager", "",
                data=data))
    shown = _lines(ok(mailroom("mailbox", "show", "alice@example.org", data=data)))
    assert "Department" not in shown and "MobilePhone" not in shown and "Manager" not in shown
    assert shown["JobTitle"] == "Account manager"

    for options, said in [((), ("--department", "--throttling-policy")), (("--phone", "satellite=1"), ("KIND",)),
                          (("--phone", "business"), ("KIND=NUMBER",)),
                          (("--manager", "nobody@example.org"), ("no mailbox nobody@example.org",)),
                          (("--manager", "alice@example.org"), ("own manager",)),
                          (("--throttling-policy", "X", "--no-throttling-policy"), ("not both",))]:
        fails(mailroom("mailbox", "set", "alice@example.org", *options, data=data), "error:", *said)
    fails(mailroom("mailbox", "show", "nobody@example.org", data=data), "error:", "no mailbox")
    assert _lines(ok(mailroom("mailbox", "show", "alice@example.org", data=data)))["JobTitle"] == "Account manager"


def test_rooms_and_groups(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    ok(mailroom("mailbox", "add", "alice@example.org", "--password", "pw", data=data))
    assert "room mailbox" in ok(mailroom("mailbox", "add", "board@example.org", "--room", "--name", "Boardroom",
                                         data=data))
    ok(mailroom("mailbox", "add", "beamer@example.org", "--equipment", data=data))
    fails(mailroom("mailbox", "add", "x@example.org", "--room", "--equipment", data=data), "error:", "not both")
    assert _lines(ok(mailroom("mailbox", "show", "board@example.org", data=data)))["Kind"] == "room"

    assert "room list" in ok(mailroom("group", "add", "hq@example.org", "--room-list", "--name", "HQ", data=data))
    ok(mailroom("group", "add", "team@example.org", "--name", "Team", data=data))
    ok(mailroom("group", "add", "all@example.org", "--name", "All", data=data))
    for group, member in (("hq@example.org", "board@example.org"), ("team@example.org", "alice@example.org"),
                          ("team@example.org", "Partner@Elsewhere.example"), ("all@example.org", "team@example.org")):
        ok(mailroom("group", "member", "add", group, member, data=data))
    rows = table_rows(ok(mailroom("group", "list", data=data)))
    assert rows == [["all@example.org", "All", "", "team@example.org"],
                    ["hq@example.org", "HQ", "yes", "board@example.org"],
                    ["team@example.org", "Team", "", "alice@example.org, partner@elsewhere.example"]]
    for args, said in [(("group", "add", "alice@example.org"), "already in use"),
                       (("mailbox", "add", "team@example.org", "--password", "pw"), "already in use"),
                       (("group", "add", "x@example.com"), "not an accepted domain"),
                       (("group", "member", "add", "team@example.org", "alice@example.org"), "already"),
                       (("group", "member", "add", "team@example.org", "team@example.org"), "itself"),
                       (("group", "member", "add", "team@example.org", "ghost@example.org"), "no mailbox or group"),
                       (("group", "member", "add", "nogroup@example.org", "alice@example.org"), "no group"),
                       (("domain", "remove", "example.org"), "still has")]:
        fails(mailroom(*args, data=data), "error:", said)

    ok(mailroom("group", "member", "remove", "team@example.org", "partner@elsewhere.example", data=data))
    fails(mailroom("group", "member", "remove", "team@example.org", "partner@elsewhere.example", data=data),
          "error:", "not a member")
    ok(mailroom("group", "remove", "team@example.org", data=data))
    rows = table_rows(ok(mailroom("group", "list", data=data)))
    assert [row[0] for row in rows] == ["all@example.org", "hq@example.org"] and rows[0][3] == ""
    fails(mailroom("group", "remove", "team@example.org", data=data), "error:", "no group")
    store = Store.open(sqlite_url(data), pool_size=1)
    try:
        _, secret = store.directory.password_hash("board@example.org")
        assert secret is None  # a resource mailbox has no password: nobody logs in as it
    finally:
        store.close()


def test_junk_email_lists(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    ok(mailroom("mailbox", "add", "alice@example.org", "--password", "pw", data=data))
    shown = _lines(ok(mailroom("mailbox", "junk", "alice@example.org", "--block", "Spam.Example", "--block",
                               "bad@elsewhere.example", "--trust", "news@spam.example", data=data)))
    assert shown == {"BlockedSendersAndDomains": "spam.example, bad@elsewhere.example",
                     "TrustedSendersAndDomains": "news@spam.example"}
    ok(mailroom("mailbox", "junk", "alice@example.org", "--unblock", "bad@elsewhere.example", "--trust",
                "spam.example", data=data))
    shown = _lines(ok(mailroom("mailbox", "junk", "alice@example.org", data=data)))
    assert shown == {"BlockedSendersAndDomains": "", "TrustedSendersAndDomains": "news@spam.example, spam.example"}
    fails(mailroom("mailbox", "junk", "nobody@example.org", data=data), "error:", "no mailbox")
