"""Exchange impersonation: an admin grants a service account the ApplicationImpersonation role over a
scope; the account names the mailbox in the ExchangeImpersonation SOAP header and acts as its owner."""

from __future__ import annotations

import logging
import uuid

import pytest
from exchangelib import Mailbox as EwsMailbox
from exchangelib import Message
from exchangelib.errors import ErrorImpersonateUserDenied, ErrorImpersonationDenied, ErrorNonExistentMailbox

from mailroom.store import ids
from mailroom.store.directory import guid_of_sid, mailbox_sid
from mailroom.store.errors import AlreadyExists, NotFound
from mailroom.store.model import Mailbox
from mailroom.store.scopes import ScopeError, compile_filter, parse_scope

from .conftest import PASSWORD, make_account, new_domain, new_mailbox
from .soap import NS, envelope, fault_code, parse, post
from .test_cli import fails, mailroom, ok, table_rows

GET_INBOX = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
             '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>')


def as_(server, service, target: str, kind: str = "PrimarySmtpAddress"):  # noqa: ANN001, ANN201
    """GetFolder(inbox) by ``service`` impersonating ``target`` (named by ``kind``), raw SOAP."""
    header = (f"<t:ExchangeImpersonation><t:ConnectingSID><t:{kind}>{target}</t:{kind}>"
              "</t:ConnectingSID></t:ExchangeImpersonation>")
    return post(server.ews_url, envelope(GET_INBOX, header_extra=header), service.address, PASSWORD)


def inbox_owner(response) -> str:  # noqa: ANN001
    """The GUID of the mailbox whose inbox the GetFolder response returned."""
    assert response.status_code == 200, response.text
    folder_id = parse(response).find(".//t:FolderId", NS).get("Id")
    return ids.decode(folder_id, ids.KIND_FOLDER).mailbox_guid


def test_service_account_reads_writes_and_sends_as_the_owner(server, server_store, caplog):
    caplog.set_level(logging.INFO, logger="mailroom.audit")
    domain = new_domain(server_store)
    service = new_mailbox(server_store, domain, "svc", "Service")
    owner = new_mailbox(server_store, domain, "owner", "Olive Owner")
    friend = new_mailbox(server_store, domain, "friend")
    server_store.directory.grant_impersonation(service.address, "all")

    account = make_account(server, owner.address, impersonator=service.address)
    Message(account=account, folder=account.inbox, subject="filed by the service").save()
    assert [m.subject for m in account.inbox.all()] == ["filed by the service"]
    stored, _ = server_store.items.find(owner, server_store.folders.distinguished(owner, "inbox").id)
    assert [i.props.get("Subject") for i in stored] == ["filed by the service"]
    assert server_store.items.find(service, server_store.folders.distinguished(service, "inbox").id)[1] == 0

    Message(account=account, subject="sent as owner", body="hi",
            to_recipients=[EwsMailbox(email_address=friend.address)]).send_and_save()
    server.settle()
    received = make_account(server, friend.address).inbox.get(subject="sent as owner")
    assert received.sender.email_address == owner.address
    assert received.author.email_address == owner.address
    assert account.sent.get(subject="sent as owner").author.email_address == owner.address

    lines = [r.getMessage() for r in caplog.records if r.name == "mailroom.audit"]
    assert f"caller={service.address} target={owner.address} right=impersonation operation=CreateItem " \
           "result=NoError" in lines


def test_without_a_grant_impersonation_is_denied(server, server_store, caplog):
    caplog.set_level(logging.INFO, logger="mailroom.audit")
    domain = new_domain(server_store)
    service = new_mailbox(server_store, domain, "svc")
    owner = new_mailbox(server_store, domain, "owner")
    response = as_(server, service, owner.address)
    assert response.status_code == 500
    assert fault_code(parse(response)) == "ErrorImpersonationDenied"
    # Without the role nothing is said about which mailboxes exist.
    assert fault_code(parse(as_(server, service, f"nobody@{domain}"))) == "ErrorImpersonationDenied"
    with pytest.raises(ErrorImpersonationDenied):
        make_account(server, owner.address, impersonator=service.address).inbox.all().count()
    assert any(f"caller={service.address} target={owner.address}" in r.getMessage() and
               "result=ErrorImpersonationDenied" in r.getMessage() for r in caplog.records)


def test_unknown_target_is_a_nonexistent_mailbox(server, server_store):
    domain = new_domain(server_store)
    service = new_mailbox(server_store, domain, "svc")
    server_store.directory.grant_impersonation(service.address, "all")
    assert fault_code(parse(as_(server, service, f"nobody@{domain}"))) == "ErrorNonExistentMailbox"
    with pytest.raises(ErrorNonExistentMailbox):
        make_account(server, f"nobody@{domain}", impersonator=service.address).inbox.all().count()


@pytest.mark.parametrize("kind", ["all", "domain", "database", "mailboxes", "filter"])
def test_each_scope_kind_covers_inside_and_refuses_outside(server, server_store, kind):
    inside_domain, outside_domain = new_domain(server_store), new_domain(server_store)
    database = f"DB{uuid.uuid4().hex[:8]}"
    service = new_mailbox(server_store, outside_domain, "svc")
    inside = server_store.directory.add_mailbox(f"in@{inside_domain}", None, "Inside", database)
    outside = new_mailbox(server_store, outside_domain, "out")
    scope = {"all": "all", "domain": f"domain:{inside_domain}", "database": f"database:{database}",
             "mailboxes": f"mailboxes:{inside.address}",
             "filter": f"filter:address -like '*@{inside_domain}' -and database -eq '{database.lower()}'"}[kind]
    server_store.directory.grant_impersonation(service.address, scope)
    assert inbox_owner(as_(server, service, inside.address)) == inside.guid
    refused = as_(server, service, outside.address)
    if kind == "all":
        assert inbox_owner(refused) == outside.guid
    else:
        assert refused.status_code == 500
        assert fault_code(parse(refused)) == "ErrorImpersonateUserDenied"
        with pytest.raises(ErrorImpersonateUserDenied):
            make_account(server, outside.address, impersonator=service.address).inbox.all().count()


def test_mailbox_created_after_a_domain_grant_is_covered_and_revoke_takes_effect(server, server_store):
    domain = new_domain(server_store)
    service = new_mailbox(server_store, new_domain(server_store), "svc")
    server_store.directory.grant_impersonation(service.address, f"domain:{domain}")
    later = new_mailbox(server_store, domain, "later")
    assert inbox_owner(as_(server, service, later.address)) == later.guid
    assert server_store.directory.revoke_impersonation(service.address, f"domain:{domain.upper()}") == 1
    assert fault_code(parse(as_(server, service, later.address))) == "ErrorImpersonationDenied"


def test_connecting_sid_forms(server, server_store):
    domain = new_domain(server_store)
    service = new_mailbox(server_store, domain, "svc")
    owner = new_mailbox(server_store, domain, "owner")
    server_store.directory.add_alias(owner.address, f"o.alias@{domain}")
    server_store.directory.grant_impersonation(service.address, f"mailboxes:{owner.address}")
    assert inbox_owner(as_(server, service, f"O.Alias@{domain}", "SmtpAddress")) == owner.guid
    assert inbox_owner(as_(server, service, owner.address, "PrincipalName")) == owner.guid
    assert inbox_owner(as_(server, service, mailbox_sid(owner.guid), "SID")) == owner.guid
    assert fault_code(parse(as_(server, service, mailbox_sid(service.guid), "SID"))) == "ErrorImpersonateUserDenied"
    assert fault_code(parse(as_(server, service, "S-1-5-32-544", "SID"))) == "ErrorNonExistentMailbox"
    empty = post(server.ews_url, envelope(GET_INBOX, header_extra="<t:ExchangeImpersonation/>"), service.address,
                 PASSWORD)
    assert fault_code(parse(empty)) == "ErrorInvalidExchangeImpersonationHeaderData"


def test_impersonation_acts_only_on_the_target(server, server_store):
    """Under impersonation the request is the owner's: the service account's own folders are out of reach."""
    domain = new_domain(server_store)
    service = new_mailbox(server_store, domain, "svc")
    owner = new_mailbox(server_store, domain, "owner")
    server_store.directory.grant_impersonation(service.address, "all")
    own_inbox = make_account(server, service.address).inbox.id
    body = (f'<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
            f'<m:FolderIds><t:FolderId Id="{own_inbox}"/></m:FolderIds></m:GetFolder>')
    header = (f"<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{owner.address}"
              "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>")
    root = parse(post(server.ews_url, envelope(body, header_extra=header), service.address, PASSWORD))
    assert [c.text for c in root.iterfind(".//m:ResponseCode", NS)] == ["ErrorAccessDenied"]


def test_grants_in_the_directory(store):
    domain = new_domain(store)
    service = new_mailbox(store, domain, "svc")
    other = new_mailbox(store, domain, "other")
    directory = store.directory
    directory.grant_impersonation(service.address, f"mailboxes:{other.address}, {service.address}")
    with pytest.raises(AlreadyExists):
        directory.grant_impersonation(service.address, f"mailboxes:{service.address},{other.address}")
    with pytest.raises(NotFound):
        directory.grant_impersonation(service.address, f"mailboxes:ghost@{domain}")
    with pytest.raises(NotFound):
        directory.grant_impersonation(service.address, "domain:not-accepted.example")
    with pytest.raises(ScopeError):
        directory.grant_impersonation(service.address, "filter:address -gt 'x'")
    assert [str(g.scope) for g in directory.impersonation_grants(service)] == [
        f"mailboxes:{other.address},{service.address}"]
    assert directory.impersonation_allowed(service, other)
    directory.remove_mailbox(other.address)
    assert directory.impersonation_allowed(service, service)
    with pytest.raises(NotFound):
        directory.revoke_impersonation(service.address, "all")
    assert directory.revoke_impersonation(service.address) == 1
    assert directory.impersonation_grants(service) == []
    assert not directory.impersonation_allowed(service, service)
    assert guid_of_sid(mailbox_sid(service.guid)) == service.guid


@pytest.mark.parametrize(("expr", "covered"), [
    ("address -like '*@sales.example.com'", True),
    ("Address -notlike '*@SALES.example.com'", False),
    ("database -eq 'db02'", True),
    ("database -ne 'DB02' -or DisplayName -like 'ann *'", True),
    ("-not (domain -eq 'sales.example.com') -or database -eq 'DB01'", False),
    ("PrimarySmtpAddress -eq 'ann@sales.example.com' -and (database -eq 'DB01' -or domain -like 'sales.*')", True),
])
def test_filter_language(expr, covered):
    ann = Mailbox(id=1, guid=str(uuid.uuid4()), address="ann@sales.example.com", display_name="Ann Smith",
                  database_id=1, database_name="DB02", database_guid=str(uuid.uuid4()))
    assert compile_filter(expr)(ann) is covered
    assert parse_scope(f"filter:{expr}").covers(ann) is covered


@pytest.mark.parametrize(("scope", "complaint"), [
    ("filter:office -eq 'x'", "unknown property 'office'"),
    ("filter:address -eq x", "must be quoted"),
    ("filter:address -contains 'x'", "-eq, -ne, -like, -notlike"),
    ("filter:(address -eq 'x'", "not closed"),
    ("filter:address -eq 'x' -and", "ends too early"),
    ("filter:address -eq 'x' database", "unexpected 'database'"),
    ("filter:address = 'x'", "cannot read the filter"),
    ("region:emea", "unknown scope"),
    ("all:x", "takes no value"),
    ("domain:", "needs a value"),
])
def test_bad_scopes_are_rejected_with_a_reason(scope, complaint):
    with pytest.raises(ScopeError, match=complaint):
        parse_scope(scope)


def test_cli_grant_list_revoke(tmp_path):
    data = tmp_path / "data"
    ok(mailroom("domain", "add", "example.org", data=data))
    for name in ("svc", "app", "bob"):
        ok(mailroom("mailbox", "add", f"{name}@example.org", "--password", "pw", data=data))
    assert "svc@example.org may impersonate mailboxes in scope domain:example.org" in ok(
        mailroom("impersonation", "grant", "svc@example.org", "--scope", "domain:Example.org", data=data))
    ok(mailroom("impersonation", "grant", "svc@example.org", "--scope", "filter:database -eq 'DB02'", data=data))
    ok(mailroom("impersonation", "grant", "app@example.org", "--scope", "mailboxes:bob@example.org", data=data))
    rows = table_rows(ok(mailroom("impersonation", "list", data=data)))
    assert [row[:2] for row in rows] == [["app@example.org", "mailboxes:bob@example.org"],
                                         ["svc@example.org", "domain:example.org"],
                                         ["svc@example.org", "filter:database -eq 'DB02'"]]
    fails(mailroom("impersonation", "grant", "svc@example.org", "--scope", "filter:office -eq 'x'", data=data),
          "error:", "unknown property 'office'")
    fails(mailroom("impersonation", "grant", "svc@example.org", "--scope", "everything", data=data),
          "error:", "unknown scope")
    fails(mailroom("impersonation", "grant", "ghost@example.org", "--scope", "all", data=data),
          "error:", "no mailbox ghost@example.org")
    assert "1 impersonation grant(s) of svc@example.org revoked" in ok(
        mailroom("impersonation", "revoke", "svc@example.org", "--scope", "domain:example.org", data=data))
    ok(mailroom("impersonation", "revoke", "app@example.org", data=data))
    rows = table_rows(ok(mailroom("impersonation", "list", data=data)))
    assert [row[:2] for row in rows] == [["svc@example.org", "filter:database -eq 'DB02'"]]
    fails(mailroom("impersonation", "revoke", "app@example.org", data=data), "error:", "no impersonation grant")
