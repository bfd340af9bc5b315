"""POX and SOAP Autodiscover on loopback, raw and through exchangelib, on both back ends."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from exchangelib import DELEGATE, Account, Configuration, Credentials
from exchangelib.autodiscover.discovery import Autodiscovery
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.protocol import BaseProtocol
from exchangelib.transport import BASIC
from lxml import etree

from .conftest import PASSWORD, RunningServer, new_mailbox
from .soap import post

REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
BASE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
A = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
NS = {"r": BASE, "o": OUTLOOK, "s": SOAP, "a": A}


def _base(server: RunningServer) -> str:
    parts = urlsplit(server.ews_url)
    return f"{parts.scheme}://{parts.netloc}"


def pox_request(address: str, schema: str = OUTLOOK) -> bytes:
    root = etree.Element(f"{{{REQUEST}}}Autodiscover", nsmap={None: REQUEST})
    request = etree.SubElement(root, f"{{{REQUEST}}}Request")
    etree.SubElement(request, f"{{{REQUEST}}}EMailAddress").text = address
    etree.SubElement(request, f"{{{REQUEST}}}AcceptableResponseSchema").text = schema
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def soap_request(operation: str, items: list[str], settings: list[str]) -> bytes:
    """A GetUserSettings (items are addresses) or GetDomainSettings (items are domains) envelope."""
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP, "a": A})
    etree.SubElement(etree.SubElement(root, f"{{{SOAP}}}Header"), f"{{{A}}}RequestedServerVersion").text = \
        "Exchange2013"
    message = etree.SubElement(etree.SubElement(root, f"{{{SOAP}}}Body"), f"{{{A}}}{operation}RequestMessage")
    request = etree.SubElement(message, f"{{{A}}}Request")
    if operation == "GetUserSettings":
        users = etree.SubElement(request, f"{{{A}}}Users")
        for address in items:
            etree.SubElement(etree.SubElement(users, f"{{{A}}}User"), f"{{{A}}}Mailbox").text = address
    else:
        domains = etree.SubElement(request, f"{{{A}}}Domains")
        for domain in items:
            etree.SubElement(domains, f"{{{A}}}Domain").text = domain
    requested = etree.SubElement(request, f"{{{A}}}RequestedSettings")
    for name in settings:
        etree.SubElement(requested, f"{{{A}}}Setting").text = name
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def pox(server: RunningServer, address: str, user: str | None, password: str | None = PASSWORD,
        schema: str = OUTLOOK) -> requests.Response:
    return post(f"{_base(server)}/Autodiscover/Autodiscover.xml", pox_request(address, schema), user, password)


def svc(server: RunningServer, payload: bytes, user: str | None, password: str | None = PASSWORD) -> requests.Response:
    return post(f"{_base(server)}/autodiscover/autodiscover.svc", payload, user, password)


def pox_error(response: requests.Response) -> str:
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{BASE}}}Autodiscover"
    return root.findtext("r:Response/r:Error/r:ErrorCode", namespaces=NS)


def settings_of(user_response: etree._Element) -> dict[str, str]:
    return {s.findtext("a:Name", namespaces=NS): s.findtext("a:Value", namespaces=NS)
            for s in user_response.iterfind("a:UserSettings/a:UserSetting", NS)}


def test_pox_answers_the_callers_own_address_with_exch_and_expr(server, mailbox):
    response = pox(server, mailbox.address.upper(), mailbox.address)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{BASE}}}Autodiscover"
    answer = root.find("o:Response", NS)
    assert answer is not None
    assert answer.findtext("o:User/o:DisplayName", namespaces=NS) == "Alice Example"
    assert answer.findtext("o:User/o:AutoDiscoverSMTPAddress", namespaces=NS) == mailbox.address
    assert answer.findtext("o:User/o:LegacyDN", namespaces=NS).startswith("/o=")
    assert answer.findtext("o:Account/o:AccountType", namespaces=NS) == "email"
    assert answer.findtext("o:Account/o:Action", namespaces=NS) == "settings"
    protocols = {p.findtext("o:Type", namespaces=NS): p for p in answer.iterfind("o:Account/o:Protocol", NS)}
    assert set(protocols) == {"EXCH", "EXPR"}
    ews_url = f"{_base(server)}/EWS/Exchange.asmx"
    for block in protocols.values():
        assert block.findtext("o:EwsUrl", namespaces=NS) == ews_url
        assert block.findtext("o:ASUrl", namespaces=NS) == ews_url
        assert block.findtext("o:OOFUrl", namespaces=NS) == ews_url
    assert protocols["EXPR"].findtext("o:Server", namespaces=NS) == "127.0.0.1"
    assert protocols["EXPR"].findtext("o:SSL", namespaces=NS) == "Off"
    assert protocols["EXCH"].findtext("o:Server", namespaces=NS).endswith(mailbox.address.split("@")[1])


def test_pox_by_alias_names_the_primary_address(server, server_store, mailbox):
    alias = f"ally@{mailbox.address.split('@')[1]}"
    server_store.directory.add_alias(mailbox.address, alias)
    root = etree.fromstring(pox(server, alias, mailbox.address).content)
    assert root.findtext("o:Response/o:User/o:AutoDiscoverSMTPAddress", namespaces=NS) == mailbox.address


def test_pox_unknown_or_foreign_address_is_error_500(server, server_store, mailbox):
    other = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob")
    assert pox_error(pox(server, f"nobody@{mailbox.address.split('@')[1]}", mailbox.address)) == "500"
    # Another user's address answers exactly like an unknown one: nothing tells who exists.
    assert pox_error(pox(server, other.address, mailbox.address)) == "500"


def test_pox_bad_requests(server, mailbox):
    assert pox_error(pox(server, mailbox.address, mailbox.address, schema="urn:other")) == "601"
    garbage = post(f"{_base(server)}/autodiscover/autodiscover.xml", b"<Autodiscover><oops", mailbox.address,
                   PASSWORD)
    assert pox_error(garbage) == "600"
    entity = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>' + pox_request(mailbox.address).split(b"?>", 1)[1])
    assert pox_error(post(f"{_base(server)}/autodiscover/autodiscover.xml", entity, mailbox.address, PASSWORD)) \
        == "600"


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.xml", "/AutoDiscover/AutoDiscover.svc"])
def test_autodiscover_needs_basic_credentials(server, mailbox, path):
    url = f"{_base(server)}{path}"
    anonymous = post(url, pox_request(mailbox.address), None, None)
    assert anonymous.status_code == 401
    assert "basic" in anonymous.headers["WWW-Authenticate"].lower()
    assert post(url, pox_request(mailbox.address), mailbox.address, "wrong").status_code == 401


def test_soap_get_user_settings(server, server_store, mailbox):
    other = new_mailbox(server_store, mailbox.address.split("@")[1], "bob", "Bob")
    requested = ["UserDisplayName", "ExternalEwsUrl", "InternalEwsUrl", "EwsSupportedSchemas", "CasVersion",
                 "UserDN", "AutoDiscoverSMTPAddress", "GroupingInformation", "NoSuchSetting"]
    users = [mailbox.address, "nobody@nowhere.example", other.address]
    response = svc(server, soap_request("GetUserSettings", users, requested), mailbox.address)
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    info = root.find("s:Header/a:ServerVersionInfo", NS)
    assert info.findtext("a:MajorVersion", namespaces=NS) == "15"
    assert info.findtext("a:Version", namespaces=NS) == "Exchange2013"
    message = root.find("s:Body/a:GetUserSettingsResponseMessage", NS)
    assert message.findtext("a:Response/a:ErrorCode", namespaces=NS) == "NoError"
    answers = message.findall("a:Response/a:UserResponses/a:UserResponse", NS)
    assert [a.findtext("a:ErrorCode", namespaces=NS) for a in answers] == ["NoError", "InvalidUser", "InvalidUser"]
    settings = settings_of(answers[0])
    ews_url = f"{_base(server)}/EWS/Exchange.asmx"
    assert settings["ExternalEwsUrl"] == settings["InternalEwsUrl"] == ews_url
    assert settings["UserDisplayName"] == "Alice Example"
    assert settings["AutoDiscoverSMTPAddress"] == mailbox.address
    assert settings["CasVersion"].startswith("15.1.")
    assert "Exchange2016" in settings["EwsSupportedSchemas"].split(", ")
    assert set(settings) == set(requested) - {"NoSuchSetting"}
    errors = answers[0].findall("a:UserSettingErrors/a:UserSettingError", NS)
    assert [(e.findtext("a:SettingName", namespaces=NS), e.findtext("a:ErrorCode", namespaces=NS))
            for e in errors] == [("NoSuchSetting", "InvalidSetting")]
    assert settings_of(answers[1]) == {} and settings_of(answers[2]) == {}


def test_soap_get_domain_settings_and_faults(server, mailbox):
    domain = mailbox.address.split("@")[1]
    response = svc(server, soap_request("GetDomainSettings", [domain, "elsewhere.example"], ["ExternalEwsUrl"]),
                   mailbox.address)
    root = etree.fromstring(response.content)
    answers = root.findall("s:Body/a:GetDomainSettingsResponseMessage/a:Response/a:DomainResponses/"
                           "a:DomainResponse", NS)
    assert [a.findtext("a:ErrorCode", namespaces=NS) for a in answers] == ["NoError", "InvalidDomain"]
    assert answers[0].findtext("a:DomainSettings/a:DomainSetting/a:Value", namespaces=NS) == \
        f"{_base(server)}/EWS/Exchange.asmx"
    fault = svc(server, b"<not-soap/>", mailbox.address)
    assert fault.status_code == 500
    assert etree.fromstring(fault.content).find("s:Body/s:Fault", NS) is not None


def test_exchangelib_autodiscovers_the_ews_url_and_uses_it(server, mailbox):
    BaseProtocol.HTTP_ADAPTER_CLS = requests.adapters.HTTPAdapter
    credentials = Credentials(mailbox.address, PASSWORD)
    # No auth_type: exchangelib probes the endpoint anonymously and reads the Basic challenge.
    protocol = AutodiscoverProtocol(config=Configuration(
        service_endpoint=f"{_base(server)}/autodiscover/autodiscover.svc", credentials=credentials))
    assert protocol.auth_type == BASIC
    # What Autodiscovery.discover() does once it has found the endpoint (its DNS steps need real names).
    discovery = Autodiscovery(email=mailbox.address, credentials=credentials)
    found, ews = discovery._build_response(discovery._quick(protocol))  # noqa: SLF001
    assert found.ews_url == ews.service_endpoint == f"{_base(server)}/EWS/Exchange.asmx"
    assert found.autodiscover_smtp_address == mailbox.address
    assert ews.version.api_version == "Exchange2016"
    account = Account(mailbox.address, access_type=DELEGATE, autodiscover=False, config=Configuration(
        service_endpoint=ews.service_endpoint, credentials=credentials, version=ews.version))
    assert account.inbox.total_count == 0
    assert account.protocol.auth_type == BASIC


def test_public_url_and_switching_autodiscover_off(store_url, tmp_path, server_store, mailbox):
    public = RunningServer(store_url, tmp_path / "public", **{"ews.public_url": "https://mail.example.com/"})
    off = RunningServer(store_url, tmp_path / "off", **{"autodiscover.enabled": False})
    try:
        root = etree.fromstring(pox(public, mailbox.address, mailbox.address).content)
        blocks = {p.findtext("o:Type", namespaces=NS): p for p in root.iterfind("o:Response/o:Account/o:Protocol", NS)}
        assert blocks["EXPR"].findtext("o:EwsUrl", namespaces=NS) == "https://mail.example.com/EWS/Exchange.asmx"
        assert blocks["EXPR"].findtext("o:Server", namespaces=NS) == "mail.example.com"
        assert blocks["EXPR"].findtext("o:SSL", namespaces=NS) == "On"
        assert pox(off, mailbox.address, mailbox.address).status_code == 404
    finally:
        public.stop()
        off.stop()
