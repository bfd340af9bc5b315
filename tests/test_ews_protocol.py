"""The protocol edges clients rely on: version negotiation, SOAP headers, HTTP headers and paths,
schema downloads, operations the server does not implement, batches, and HTTPS."""

from __future__ import annotations

import hashlib
import ssl
from importlib import resources
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from exchangelib import DELEGATE, Account, Build, Configuration, Credentials, Version
from exchangelib.protocol import BaseProtocol, NoVerifyHTTPAdapter
from exchangelib.transport import BASIC
from lxml import etree

from mailroom.ews import versions, wsdl
from mailroom.ews.service import OPERATIONS
from mailroom.store import ids
from mailroom.store.model import NewItem

from .conftest import PASSWORD, RunningServer, new_mailbox
from .soap import NS, codes, envelope, fault_code, parse, post, server_version

GET_INBOX = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>'
             '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>')


def schema_versions() -> list[str]:
    """ExchangeVersionType's values, read from the schema itself."""
    doc = etree.parse(str(resources.files("mailroom.ews").joinpath("schema/types.xsd")))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    node = doc.getroot().find(f"{xs}simpleType[@name='ExchangeVersionType']")
    return [e.get("value") for e in node.iter(f"{xs}enumeration")]


def assert_15x(root: etree._Element, version: str) -> None:
    info = server_version(root)
    assert info.get("MajorVersion") == "15", info
    assert int(info["MinorVersion"]) >= 0 and int(info["MajorBuildNumber"]) > 0
    assert info.get("Version") == version


def test_every_exchange_version_is_echoed(server, mailbox):
    assert tuple(schema_versions()) == versions.VERSIONS
    for version in schema_versions():
        response = post(server.ews_url, envelope(GET_INBOX, version), mailbox.address, PASSWORD)
        root = parse(response)
        assert response.status_code == 200, version
        assert codes(root) == ["NoError"], version
        assert_15x(root, version)


def test_unknown_version_is_a_fault_that_still_reports_the_server(server, mailbox):
    response = post(server.ews_url, envelope(GET_INBOX, "Exchange2099"), mailbox.address, PASSWORD)
    root = parse(response)
    assert response.status_code == 500
    assert fault_code(root) == "ErrorInvalidServerVersion"
    assert_15x(root, versions.NEWEST)


def test_exchangelib_steps_down_from_a_version_the_server_does_not_know(account):
    """exchangelib retries with the next older version on ErrorInvalidServerVersion."""
    found = Version.guess(account.protocol, api_version_hint="Exchange2099")
    assert found.api_version == "Exchange2016"
    assert found.build.major_version == 15


def test_exchangelib_with_a_dated_version(server, mailbox):
    BaseProtocol.HTTP_ADAPTER_CLS = requests.adapters.HTTPAdapter
    config = Configuration(service_endpoint=server.ews_url, credentials=Credentials(mailbox.address, PASSWORD),
                           auth_type=BASIC, version=Version(Build(15, 1, 2507, 6), "V2018_01_08"))
    account = Account(mailbox.address, config=config, autodiscover=False, access_type=DELEGATE)
    assert account.inbox.total_count == 0
    assert account.version.api_version == "V2018_01_08"


def test_no_request_server_version_means_exchange2007(server, mailbox):
    """Requests without a version header are handled as Exchange 2007 (initial release) requests."""
    root = parse(post(server.ews_url, envelope(GET_INBOX, None), mailbox.address, PASSWORD))
    assert codes(root) == ["NoError"]
    assert_15x(root, "Exchange2007")
    convert = ('<m:ConvertId DestinationFormat="HexEntryId"><m:SourceIds>'
               f'<t:AlternateId Format="EwsId" Id="x" Mailbox="{mailbox.address}"/></m:SourceIds></m:ConvertId>')
    response = post(server.ews_url, envelope(convert, None), mailbox.address, PASSWORD)
    assert fault_code(parse(response)) == "ErrorInvalidSchemaVersionForMailboxVersion"  # ConvertId is 2007 SP1


def test_optional_soap_and_http_headers_are_accepted(server, mailbox):
    extra = ('<t:TimeZoneContext><t:TimeZoneDefinition Id="W. Europe Standard Time"/></t:TimeZoneContext>'
             '<t:MailboxCulture>de-DE</t:MailboxCulture><t:DateTimePrecision>Milliseconds</t:DateTimePrecision>')
    headers = {"X-AnchorMailbox": mailbox.address, "X-PreferServerAffinity": "true",
               "Cookie": "X-BackEndOverrideCookie=EXCH01~1941962754", "Content-Type": "text/xml; charset=utf-8"}
    for zone in ("W. Europe Standard Time", "No Such Zone"):
        body = envelope(GET_INBOX, "Exchange2016", extra.replace("W. Europe Standard Time", zone))
        response = requests.post(server.ews_url, data=body, headers=headers, timeout=30,
                                 auth=(mailbox.address, PASSWORD))
        root = parse(response)
        assert response.status_code == 200
        assert codes(root) == ["NoError"]
        assert_15x(root, "Exchange2016")


def test_the_endpoint_path_is_case_insensitive(server, mailbox):
    base = server.ews_url.rsplit("/EWS/", 1)[0]
    for path in ("/EWS/Exchange.asmx", "/ews/exchange.asmx", "/EWS/EXCHANGE.ASMX", "/Ews/Exchange.Asmx"):
        response = post(base + path, envelope(GET_INBOX), mailbox.address, PASSWORD)
        assert response.status_code == 200, path
        assert codes(parse(response)) == ["NoError"]


def test_schema_files_are_served(server):
    base = server.ews_url.rsplit("/EWS/", 1)[0]
    for path, name in (("/EWS/Services.wsdl", "Services.wsdl"), ("/EWS/messages.xsd", "messages.xsd"),
                       ("/EWS/types.xsd", "types.xsd"), ("/ews/SERVICES.WSDL", "Services.wsdl")):
        response = requests.get(base + path, timeout=30)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith("text/xml")
        assert response.content == resources.files("mailroom.ews").joinpath(f"schema/{name}").read_bytes()
    assert requests.get(base + "/EWS/nothing.xsd", timeout=30).status_code == 404


@pytest.mark.parametrize("body", ['<m:GetUserPhoto><m:Email>a@b.example</m:Email><m:SizeRequested>HR48x48'
                                  '</m:SizeRequested></m:GetUserPhoto>',
                                  '<m:FindPeople><m:IndexedPageItemView MaxEntriesReturned="10" Offset="0" '
                                  'BasePoint="Beginning"/><m:QueryString>x</m:QueryString></m:FindPeople>'])
def test_wsdl_operation_not_implemented_is_a_per_item_error(server, mailbox, body):
    response = post(server.ews_url, envelope(body), mailbox.address, PASSWORD)
    root = parse(response)
    assert response.status_code == 200
    assert codes(root) == ["ErrorInvalidOperation"]
    assert root.find("s:Body/*", NS).get("ResponseClass") == "Error"
    assert_15x(root, "Exchange2016")


def test_every_unimplemented_wsdl_operation_gets_a_schema_valid_answer(server, mailbox):
    """Each is a per-item ErrorInvalidOperation when the response has room for one, else a fault;
    never a bare HTTP 500 (the server fixture validates every response against the schema)."""
    missing = sorted(set(wsdl.operations()) - set(OPERATIONS))
    assert "GetUserPhoto" in missing
    per_item = 0
    for name in missing:
        response = post(server.ews_url, envelope(f"<m:{name}/>"), mailbox.address, PASSWORD)
        root = parse(response)
        assert_15x(root, "Exchange2016")
        if response.status_code == 200:
            assert codes(root) == ["ErrorInvalidOperation"], name
            per_item += 1
        else:
            assert (response.status_code, fault_code(root)) == (500, "ErrorInvalidOperation"), name
    assert per_item > len(missing) // 2


@pytest.mark.parametrize("body", ["<m:GetUnifiedGroupsSettings/>",
                                  '<x:GetFolder xmlns:x="urn:not-ews"><x:FolderIds/></x:GetFolder>'])
def test_operation_outside_the_wsdl_is_a_fault(server, mailbox, body):
    response = post(server.ews_url, envelope(body), mailbox.address, PASSWORD)
    root = parse(response)
    assert response.status_code == 500
    assert fault_code(root) == "ErrorSchemaValidation"
    assert_15x(root, "Exchange2016")


def test_batch_with_good_and_bad_ids_answers_each_in_order(server, server_store, mailbox):
    domain = mailbox.address.split("@")[1]
    bob = new_mailbox(server_store, domain, "bob")
    drafts = server_store.folders.distinguished(mailbox, "drafts")
    first, second, gone = (server_store.items.create(mailbox, drafts.id, NewItem(props={"Subject": s}))
                           for s in ("first", "second", "gone"))
    server_store.items.delete(mailbox, gone.id)
    bobs = server_store.items.create(bob, server_store.folders.distinguished(bob, "drafts").id,
                                     NewItem(props={"Subject": "bob's"}))
    item_ids = [ids.item_id(mailbox.guid, first.id), "garbage!", ids.item_id(bob.guid, bobs.id),
                ids.item_id(mailbox.guid, gone.id), ids.folder_id(mailbox.guid, drafts.id),
                ids.item_id(mailbox.guid, second.id)]
    body = ('<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>'
            + "".join(f'<t:ItemId Id="{i}"/>' for i in item_ids) + "</m:ItemIds></m:GetItem>")
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorAccessDenied", "ErrorItemNotFound",
                           "ErrorInvalidIdMalformed", "NoError"]
    returned = [e.get("Id") for e in root.iterfind(".//t:Message/t:ItemId", NS)]
    assert returned == [item_ids[0], item_ids[5]]

    inbox = server_store.folders.distinguished(mailbox, "inbox")
    folder_ids = [f'<t:FolderId Id="{ids.folder_id(mailbox.guid, inbox.id)}"/>', '<t:FolderId Id="AAAA"/>',
                  f'<t:FolderId Id="{ids.folder_id(bob.guid, inbox.id)}"/>',
                  f'<t:FolderId Id="{ids.folder_id(mailbox.guid, 10**9)}"/>',
                  '<t:DistinguishedFolderId Id="drafts"/>']
    body = ('<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape><m:FolderIds>'
            + "".join(folder_ids) + "</m:FolderIds></m:GetFolder>")
    root = parse(post(server.ews_url, envelope(body), mailbox.address, PASSWORD))
    assert codes(root) == ["NoError", "ErrorInvalidIdMalformed", "ErrorAccessDenied", "ErrorFolderNotFound",
                           "NoError"]
    returned = [e.get("Id") for e in root.iterfind(".//t:FolderId", NS)]
    assert returned == [ids.folder_id(mailbox.guid, inbox.id), ids.folder_id(mailbox.guid, drafts.id)]


def test_https_with_the_self_signed_certificate(server, mailbox, monkeypatch):
    monkeypatch.setattr(BaseProtocol, "HTTP_ADAPTER_CLS", NoVerifyHTTPAdapter)
    config = Configuration(service_endpoint=server.https_url, credentials=Credentials(mailbox.address, PASSWORD),
                           auth_type=BASIC)
    with pytest.warns(Warning):  # urllib3 warns about the unverified certificate, as it should
        account = Account(mailbox.address, config=config, autodiscover=False, access_type=DELEGATE)
        assert account.inbox.total_count == 0
    assert account.version.build.major_version == 15


def _served_certificate(url: str) -> x509.Certificate:
    parts = urlsplit(url)
    return x509.load_pem_x509_certificate(ssl.get_server_certificate((parts.hostname, parts.port)).encode())


def test_certificate_names_loopback_and_is_kept_across_restarts(tmp_path):
    """A first run creates the certificate (SAN: 127.0.0.1 and localhost); later runs reuse it."""
    store_url = f"sqlite:///{tmp_path / 'mailroom.db'}"
    fingerprints = []
    for _ in range(2):
        running = RunningServer(store_url, tmp_path / "data")
        try:
            cert = _served_certificate(running.https_url)
            with pytest.raises(requests.exceptions.SSLError):
                requests.get(running.https_url, timeout=30)  # self-signed: not trusted by default
        finally:
            running.stop()
        assert not running.bad_responses
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
        assert "localhost" in san.get_values_for_type(x509.DNSName)
        fingerprints.append(hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest())
    assert fingerprints[0] == fingerprints[1]
    stored = x509.load_pem_x509_certificate((tmp_path / "data" / "tls" / "cert.pem").read_bytes())
    assert hashlib.sha256(stored.public_bytes(Encoding.DER)).hexdigest() == fingerprints[0]


def test_https_serves_ews_with_verification_against_the_certificate(server, mailbox, tmp_path):
    """A client that trusts the generated certificate verifies it for 127.0.0.1."""
    cert = tmp_path / "data" / "tls" / "cert.pem"
    response = requests.post(server.https_url, data=envelope(GET_INBOX), verify=str(cert), timeout=30,
                             auth=(mailbox.address, PASSWORD), headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    assert codes(parse(response)) == ["NoError"]

