"""Hostile input: each gets the protocol's own error, the server stays up, and nothing stored
changes (row counts and the change journal are compared before and after)."""

from __future__ import annotations

import base64
import gzip
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from lxml import etree
from sqlalchemy import func, select

from mailroom.access.passwords import hash_password
from mailroom.ews.service import OPERATIONS
from mailroom.server import config as configuration
from mailroom.store import Store, ids
from mailroom.store import tables as t
from mailroom.store.model import Attachment, Mailbox, NewItem

from .conftest import PASSWORD, RunningServer, new_domain, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post, server_version

GET_INBOX = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
             '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>')


def stored_state(store: Store) -> dict[str, object]:
    """Row counts of every table, the journal's last sequence number and every item's change number.
    The audit log is left out: recording refused attempts is its job."""
    with store.engine.connect() as conn:
        state: dict[str, object] = {table.name: conn.scalar(select(func.count()).select_from(table))
                                    for table in t.metadata.sorted_tables if table is not t.audit_log}
        state["last_seq"] = conn.scalar(select(func.max(t.journal.c.seq)))
        state["items"] = sorted(conn.execute(select(t.items.c.id, t.items.c.change_number, t.items.c.subject,
                                                    t.items.c.folder_id, t.items.c.is_read)).all())
        state["folders"] = sorted(conn.execute(select(t.folders.c.id, t.folders.c.change_number,
                                                      t.folders.c.display_name, t.folders.c.parent_id)).all())
    return state


def assert_still_serving(url: str, mailbox: Mailbox) -> None:
    root = parse(post(url, envelope(GET_INBOX), mailbox.address, PASSWORD))
    assert codes(root) == ["NoError"]


def assert_fault(response: requests.Response, code: str) -> None:
    root = parse(response)
    assert response.status_code == 500, response.content[:300]
    assert fault_code(root) == code, response.content[:500]
    assert server_version(root).get("MajorVersion") == "15"


def _raw(url: str, payload: bytes, mailbox: Mailbox, **headers: str) -> requests.Response:
    token = base64.b64encode(f"{mailbox.address}:{PASSWORD}".encode()).decode()
    return requests.post(url, data=payload, timeout=30,
                         headers={"Content-Type": "text/xml; charset=utf-8", "Authorization": f"Basic {token}",
                                  **headers})


LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i else "&lol;" * 10}">'
                    for i in range(10))
          + ']><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol9;</s:Body></s:Envelope>')

MALFORMED: dict[str, bytes] = {
    "truncated": envelope(GET_INBOX)[:-30],
    "not xml": b"GET / HTTP/1.1\r\n\r\n",
    "empty": b"",
    "whitespace": b"   \n",
    "not a soap envelope": b'<GetFolder xmlns="http://schemas.microsoft.com/exchange/services/2006/messages"/>',
    "envelope without body": b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header/>'
                             b"</s:Envelope>",
    "empty body": b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
    "doctype": b'<?xml version="1.0"?><!DOCTYPE s:Envelope>' + envelope(GET_INBOX).split(b"?>", 1)[1],
    "billion laughs": LAUGHS.encode(),
    "deep nesting": b"<a>" * 100_000 + b"</a>" * 100_000,
    "deep nesting in a request": envelope("<m:GetFolder>" + "<t:x>" * 5000 + "</t:x>" * 5000 + "</m:GetFolder>"),
    "invalid utf-8": envelope(GET_INBOX).replace(b'Id="inbox"', b'Id="\xff\xfe\xc3("'),
    "bogus encoding": b'<?xml version="1.0" encoding="x-no-such"?>' + envelope(GET_INBOX).split(b"?>", 1)[1],
    "undeclared entity": envelope(GET_INBOX.replace("inbox", "&nope;")),
}


def test_malformed_requests_get_schema_validation_faults(server, server_store, mailbox):
    assert_still_serving(server.ews_url, mailbox)
    before = stored_state(server_store)
    for name, payload in MALFORMED.items():
        started = time.monotonic()
        response = _raw(server.ews_url, payload, mailbox)
        assert time.monotonic() - started < 10, name
        assert_fault(response, "ErrorSchemaValidation")
        assert_still_serving(server.ews_url, mailbox)
    assert stored_state(server_store) == before


class Listener:
    """A loopback TCP listener that records whether anything connected to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    running = Listener()
    yield running
    running.close()


def test_external_entities_are_never_resolved(server, server_store, mailbox, listener):
    secret = open("/etc/passwd").read().splitlines()[0]  # noqa: SIM115 - a line we must never see echoed
    url = f"http://127.0.0.1:{listener.port}/evil"
    body = envelope(GET_INBOX.replace('Id="inbox"/>', 'Id="inbox"/><t:FolderId Id="&xxe;"/>'))
    rest = body.split(b"?>", 1)[1]
    payloads = [
        b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>' + rest,
        f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "{url}">]>'.encode() + rest,
        f'<?xml version="1.0"?><!DOCTYPE s:Envelope SYSTEM "{url}.dtd">'.encode() + rest,
        f'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY % p SYSTEM "{url}.dtd"> %p;]>'.encode() + rest,
        body.replace(b"<s:Envelope", f'<s:Envelope xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include '
                                     f'href="{url}"/><s:Envelope'.encode(), 1) + b"</s:Envelope>",
        body.replace(b"<s:Body>", b'<s:Body xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include '
                                  b'href="file:///etc/passwd" parse="text"/>'),
    ]
    before = stored_state(server_store)
    for payload in payloads:
        response = _raw(server.ews_url, payload, mailbox)
        assert response.status_code in (200, 500)
        assert parse(response) is not None
        assert secret not in response.text
        assert "root:" not in response.text
        assert_still_serving(server.ews_url, mailbox)
    time.sleep(0.3)
    assert listener.connections == 0
    assert stored_state(server_store) == before


def test_the_request_size_limit_is_configurable_and_answered_in_soap(store_url, tmp_path):
    assert configuration.load().values["ews.max_request_bytes"] == 64 * 1024 * 1024
    limit = 64 * 1024
    setup = Store.open(store_url, pool_size=1)
    mailbox = new_mailbox(setup, new_domain(setup), "alice")
    running = RunningServer(store_url, tmp_path / "data", **{"ews.max_request_bytes": limit})
    try:
        before = stored_state(setup)
        head, tail = envelope(GET_INBOX).split(b"</s:Body>")
        fits = head + b" " * (limit - len(head) - len(tail) - 20) + b"</s:Body>" + tail
        assert len(fits) <= limit
        assert codes(parse(_raw(running.ews_url, fits, mailbox))) == ["NoError"]
        too_big = head + b" " * limit + b"</s:Body>" + tail
        assert_fault(_raw(running.ews_url, too_big, mailbox), "ErrorRequestStreamTooBig")
        chunks = (too_big[i:i + 8192] for i in range(0, len(too_big), 8192))  # chunked: no Content-Length
        assert_fault(_raw(running.ews_url, chunks, mailbox), "ErrorRequestStreamTooBig")  # type: ignore[arg-type]
        bomb = gzip.compress(head + b" " * (200 * limit) + b"</s:Body>" + tail)
        assert len(bomb) < limit
        assert_fault(_raw(running.ews_url, bomb, mailbox, **{"Content-Encoding": "gzip"}), "ErrorRequestStreamTooBig")
        assert post(running.ews_url, too_big, None, None).status_code == 401
        assert_still_serving(running.ews_url, mailbox)
        assert stored_state(setup) == before
    finally:
        running.stop()
        setup.close()
    assert not running.bad_responses


def _timed_401(url: str, user: str, password: str) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = post(url, envelope(GET_INBOX), user, password)
    return time.monotonic() - started, response


def test_wrong_credentials_say_nothing_about_the_user(server, server_store, mailbox):
    # The production hash cost (test mailboxes get the cheapest): the timings below compare a
    # verification of it with the unknown user's decoy verification.
    server_store.directory.set_password(mailbox.address, hash_password(PASSWORD))
    domain = mailbox.address.split("@")[1]
    attempts = {"wrong password": (mailbox.address, "wrong"), "unknown user": (f"nobody@{domain}", PASSWORD),
                "unknown domain": ("alice@nowhere.example", PASSWORD), "empty": ("", "")}
    answers = {}
    timings: dict[str, list[float]] = {name: [] for name in attempts}
    for _ in range(3):
        for name, (user, password) in attempts.items():
            elapsed, response = _timed_401(server.ews_url, user, password)
            timings[name].append(elapsed)
            answers[name] = (response.status_code, response.headers.get("WWW-Authenticate"), response.content)
    garbage = requests.post(server.ews_url, data=envelope(GET_INBOX), timeout=30,
                            headers={"Authorization": "Basic %%%not-base64"})
    answers["garbage header"] = (garbage.status_code, garbage.headers.get("WWW-Authenticate"), garbage.content)
    assert len(set(answers.values())) == 1, answers
    assert next(iter(answers.values()))[0] == 401
    # An unknown user costs a password verification too, so timing does not tell users apart.
    slow = statistics.median(timings["wrong password"])
    assert statistics.median(timings["unknown user"]) > 0.3 * slow, timings


def _other_user_requests(bob: Mailbox, item: str, folder: str, attachment: str) -> dict[str, str]:
    """One request per operation that names a single object of ``bob``'s mailbox."""
    in_bobs = f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{bob.address}</t:EmailAddress>' \
              "</t:Mailbox></t:DistinguishedFolderId>"
    item_id, folder_id = f'<t:ItemId Id="{item}"/>', f'<t:FolderId Id="{folder}"/>'
    idonly = "<t:BaseShape>IdOnly</t:BaseShape>"
    return {
        "GetItem": f"<m:GetItem><m:ItemShape>{idonly}</m:ItemShape><m:ItemIds>{item_id}</m:ItemIds></m:GetItem>",
        "GetFolder": f"<m:GetFolder><m:FolderShape>{idonly}</m:FolderShape><m:FolderIds>{folder_id}</m:FolderIds>"
                     "</m:GetFolder>",
        "GetFolder by name": f"<m:GetFolder><m:FolderShape>{idonly}</m:FolderShape><m:FolderIds>{in_bobs}"
                             "</m:FolderIds></m:GetFolder>",
        "FindItem": f'<m:FindItem Traversal="Shallow"><m:ItemShape>{idonly}</m:ItemShape><m:ParentFolderIds>'
                    f"{in_bobs}</m:ParentFolderIds></m:FindItem>",
        "FindFolder": f'<m:FindFolder Traversal="Deep"><m:FolderShape>{idonly}</m:FolderShape><m:ParentFolderIds>'
                      f"{folder_id}</m:ParentFolderIds></m:FindFolder>",
        "CreateItem": '<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>'
                      f"{in_bobs}</m:SavedItemFolderId><m:Items><t:Message><t:Subject>planted</t:Subject>"
                      "</t:Message></m:Items></m:CreateItem>",
        "UpdateItem": '<m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly">'
                      f"<m:ItemChanges><t:ItemChange>{item_id}<t:Updates><t:SetItemField>"
                      '<t:FieldURI FieldURI="item:Subject"/><t:Message><t:Subject>pwned</t:Subject></t:Message>'
                      "</t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges></m:UpdateItem>",
        "DeleteItem": f'<m:DeleteItem DeleteType="HardDelete"><m:ItemIds>{item_id}</m:ItemIds></m:DeleteItem>',
        "MoveItem": '<m:MoveItem><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId>'
                    f"<m:ItemIds>{item_id}</m:ItemIds></m:MoveItem>",
        "CopyItem": '<m:CopyItem><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId>'
                    f"<m:ItemIds>{item_id}</m:ItemIds></m:CopyItem>",
        "SendItem": f'<m:SendItem SaveItemToFolder="false"><m:ItemIds>{item_id}</m:ItemIds></m:SendItem>',
        "CreateFolder": f"<m:CreateFolder><m:ParentFolderId>{folder_id}</m:ParentFolderId><m:Folders><t:Folder>"
                        "<t:DisplayName>planted</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>",
        "UpdateFolder": f"<m:UpdateFolder><m:FolderChanges><t:FolderChange>{folder_id}<t:Updates>"
                        '<t:SetFolderField><t:FieldURI FieldURI="folder:DisplayName"/><t:Folder>'
                        "<t:DisplayName>pwned</t:DisplayName></t:Folder></t:SetFolderField></t:Updates>"
                        "</t:FolderChange></m:FolderChanges></m:UpdateFolder>",
        "DeleteFolder": f'<m:DeleteFolder DeleteType="HardDelete"><m:FolderIds>{folder_id}</m:FolderIds>'
                        "</m:DeleteFolder>",
        "EmptyFolder": f'<m:EmptyFolder DeleteType="HardDelete" DeleteSubFolders="true"><m:FolderIds>{folder_id}'
                       "</m:FolderIds></m:EmptyFolder>",
        "MoveFolder": '<m:MoveFolder><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId>'
                      f"<m:FolderIds>{folder_id}</m:FolderIds></m:MoveFolder>",
        "CopyFolder": '<m:CopyFolder><m:ToFolderId><t:DistinguishedFolderId Id="inbox"/></m:ToFolderId>'
                      f"<m:FolderIds>{folder_id}</m:FolderIds></m:CopyFolder>",
        "MarkAllItemsAsRead": "<m:MarkAllItemsAsRead><m:ReadFlag>true</m:ReadFlag><m:SuppressReadReceipts>true"
                              f"</m:SuppressReadReceipts><m:FolderIds>{folder_id}</m:FolderIds>"
                              "</m:MarkAllItemsAsRead>",
        "CreateAttachment": f'<m:CreateAttachment><m:ParentItemId Id="{item}"/><m:Attachments><t:FileAttachment>'
                            "<t:Name>planted.txt</t:Name><t:Content>aGk=</t:Content></t:FileAttachment>"
                            "</m:Attachments></m:CreateAttachment>",
        "GetAttachment": f'<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id="{attachment}"/></m:AttachmentIds>'
                         "</m:GetAttachment>",
        "DeleteAttachment": f'<m:DeleteAttachment><m:AttachmentIds><t:AttachmentId Id="{attachment}"/>'
                            "</m:AttachmentIds></m:DeleteAttachment>",
        "ExportItems": f"<m:ExportItems><m:ItemIds>{item_id}</m:ItemIds></m:ExportItems>",
    }


def test_another_users_mailbox_is_out_of_reach(server, server_store, mailbox):
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    inbox = server_store.folders.distinguished(bob, "inbox")
    secret = server_store.items.create(bob, inbox.id, NewItem(
        props={"Subject": "bob's secret", "IsRead": False},
        attachments=[Attachment(kind="file", name="secret.txt", content_type="text/plain", content=b"s3cret")]))
    folder = server_store.folders.create(bob, inbox.id, "Private", "IPF.Note")
    server_store.items.create(bob, folder.id, NewItem(props={"Subject": "in private"}))
    requests_by_op = _other_user_requests(bob, ids.item_id(bob.guid, secret.id), ids.folder_id(bob.guid, folder.id),
                                          ids.attachment_id(bob.guid, secret.id, secret.attachments[0].id))
    before = stored_state(server_store)
    tried = []
    for label, body in requests_by_op.items():
        if label.split()[0] not in OPERATIONS:
            continue
        tried.append(label)
        response = post(server.ews_url, envelope(body), mailbox.address, PASSWORD)
        root = parse(response)
        assert response.status_code == 200, (label, response.content[:600])
        assert codes(root) == ["ErrorAccessDenied"], (label, response.content[:600])
        assert b"secret" not in response.content and b"s3cret" not in response.content
    assert {"GetItem", "GetFolder", "GetFolder by name", "FindItem", "FindFolder", "CreateItem"} <= set(tried)
    assert stored_state(server_store) == before
    refused = server_store.audit.search(bob.address, caller=mailbox.address, limit=1000)
    assert refused and {(r.right, r.result) for r in refused} == {("delegate", "ErrorAccessDenied")}


def test_ids_of_a_removed_mailbox_are_not_found(server, server_store, mailbox):
    carol = new_mailbox(server_store, new_domain(server_store), "carol")
    inbox = server_store.folders.distinguished(carol, "inbox")
    item = server_store.items.create(carol, inbox.id, NewItem(props={"Subject": "left behind"}))
    item_id, folder_id = ids.item_id(carol.guid, item.id), ids.folder_id(carol.guid, inbox.id)
    server_store.directory.remove_mailbox(carol.address)
    before = stored_state(server_store)
    body = (f'<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>'
            f'<t:ItemId Id="{item_id}"/></m:ItemIds></m:GetItem>')
    assert codes(parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))) == ["ErrorItemNotFound"]
    body = (f'<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
            f'<t:FolderId Id="{folder_id}"/></m:FolderIds></m:GetFolder>')
    assert codes(parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))) == ["ErrorFolderNotFound"]
    body = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
            f'<t:DistinguishedFolderId Id="inbox"><t:Mailbox><t:EmailAddress>{carol.address}</t:EmailAddress>'
            "</t:Mailbox></t:DistinguishedFolderId></m:FolderIds></m:GetFolder>")
    assert codes(parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))) == ["ErrorNonExistentMailbox"]
    assert post(server.ews_url, envelope(GET_INBOX), carol.address, PASSWORD).status_code == 401
    assert stored_state(server_store) == before


def test_garbage_and_oversize_ids_and_change_keys(server, server_store, mailbox):
    drafts = server_store.folders.distinguished(mailbox, "drafts")
    item = server_store.items.create(mailbox, drafts.id, NewItem(props={"Subject": "mine"}))
    good = ids.item_id(mailbox.guid, item.id)
    huge = "A" * 1_000_000
    bad_ids = ["", huge, "%%%", "a b", good + "AAAA", good[:-3], ids.folder_id(mailbox.guid, drafts.id),
               "\u2603" * 10]
    nobody = base64.urlsafe_b64encode(b"\x01I" + b"\0" * 24).decode().rstrip("=")  # well formed, names nothing
    item_ids = "".join(f'<t:ItemId Id="{i}" ChangeKey="{huge if n % 2 else "%%%"}"/>'
                       for n, i in enumerate([*bad_ids, nobody, good]))
    body = (f'<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>{item_ids}'
            "</m:ItemIds></m:GetItem>")
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorInvalidIdMalformed"] * len(bad_ids) + ["ErrorItemNotFound", "NoError"]
    assert huge.encode() not in etree.tostring(root)

    folder_ids = "".join(f'<t:FolderId Id="{i}"/>' for i in ("", huge, good, "x"))
    body = (f'<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
            f'{folder_ids}<t:DistinguishedFolderId Id="{huge}"/></m:FolderIds></m:GetFolder>')
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert codes(root) == ["ErrorInvalidIdMalformed"] * 4 + ["ErrorFolderNotFound"]

    before = stored_state(server_store)
    if "UpdateItem" in OPERATIONS:
        for change_key in ("%%%", huge, base64.b64encode(b"\0" * 30).decode()):
            body = ('<m:UpdateItem ConflictResolution="NeverOverwrite" MessageDisposition="SaveOnly">'
                    f'<m:ItemChanges><t:ItemChange><t:ItemId Id="{good}" ChangeKey="{change_key}"/><t:Updates>'
                    '<t:SetItemField><t:FieldURI FieldURI="item:Subject"/><t:Message><t:Subject>changed'
                    "</t:Subject></t:Message></t:SetItemField></t:Updates></t:ItemChange></m:ItemChanges>"
                    "</m:UpdateItem>")
            found = codes(parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD)))
            assert found in (["ErrorInvalidChangeKey"], ["ErrorIrresolvableConflict"]), (change_key[:10], found)
    assert stored_state(server_store) == before
    assert_still_serving(server.ews_url, mailbox)


def test_responses_never_echo_markup_from_the_request(server, mailbox):
    """Text from the request that ends up in an answer is escaped, never copied as markup."""
    body = GET_INBOX.replace('Id="inbox"', 'Id="&lt;/t:x&gt;&lt;script&gt;"')
    response = post(server.ews_url, envelope(body), mailbox.address, PASSWORD)
    assert b"<script>" not in response.content
    root = parse(response)
    assert root.find("s:Body", NS) is not None


def test_convert_id_converts_ids_of_any_mailbox_without_reading_it(server, server_store, mailbox):
    """ConvertId is a conversion of the id's format only, as in Exchange: another mailbox's id
    converts (and back), it reveals nothing the id does not hold, and using the converted id is
    still refused."""
    bob = new_mailbox(server_store, mailbox.address.split("@")[1], "bob")
    inbox = server_store.folders.distinguished(bob, "inbox")
    secret = server_store.items.create(bob, inbox.id, NewItem(props={"Subject": "bob's secret"}))
    ews_id = ids.item_id(bob.guid, secret.id)

    def convert(text: str, source: str, target: str, address: str = bob.address) -> tuple[list[str], str | None]:
        body = (f'<m:ConvertId DestinationFormat="{target}"><m:SourceIds><t:AlternateId Format="{source}" '
                f'Id="{text}" Mailbox="{address}"/></m:SourceIds></m:ConvertId>')
        response = post(server.ews_url, envelope(body), mailbox.address, PASSWORD)
        assert b"secret" not in response.content
        root = parse(response)
        found = root.find(".//m:AlternateId", NS)
        if found is not None:
            assert found.get("Mailbox") == address
        return codes(root), found.get("Id") if found is not None else None

    got, hex_id = convert(ews_id, "EwsId", "HexEntryId")
    assert got == ["NoError"] and hex_id
    assert convert(hex_id, "HexEntryId", "EwsId") == (["NoError"], ews_id)
    assert convert(ews_id, "EwsId", "EntryId", "not-an-address")[0] == ["ErrorInvalidSmtpAddress"]
    assert convert("garbage", "EwsId", "EntryId")[0] == ["ErrorInvalidIdMalformed"]
    get = ('<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>'
           f'<m:ItemIds><t:ItemId Id="{ews_id}"/></m:ItemIds></m:GetItem>')
    assert codes(parse(post(server.ews_url, envelope(get), mailbox.address, PASSWORD))) == ["ErrorAccessDenied"]
