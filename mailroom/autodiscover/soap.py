"""SOAP Autodiscover (``/autodiscover/autodiscover.svc``): GetUserSettings and GetDomainSettings of
[MS-OXWSADISC], what exchangelib and the EWS Managed API call. One UserResponse per requested user,
in order; a setting this server does not serve is reported in UserSettingErrors, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable

from lxml import etree

from mailroom.access.identity import Identity
from mailroom.ews import versions
from mailroom.ews.xml import SOAP, XMLRejected, local, parse, sub, to_bytes
from mailroom.store import Store

from . import Profile, ews_url, find_user

log = logging.getLogger(__name__)

A = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTION = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/"

# Exchange names its schema versions this way; the placeholders (2009, 2012, 2015) never shipped.
SUPPORTED_SCHEMAS = ", ".join(v for v in versions.VERSIONS[:versions.VERSIONS.index(versions.NEWEST) + 1]
                              if v not in ("Exchange2009", "Exchange2012", "Exchange2015"))
CAS_VERSION = ".".join(versions.BUILD[k] for k in ("MajorVersion", "MinorVersion", "MajorBuildNumber",
                                                   "MinorBuildNumber"))

USER_SETTINGS: dict[str, Callable[[Profile], str]] = {
    "UserDisplayName": lambda p: p.mailbox.display_name,
    "UserDN": lambda p: p.legacy_dn,
    "UserDeploymentId": lambda p: p.deployment_id,
    "AutoDiscoverSMTPAddress": lambda p: p.mailbox.address,
    "CasVersion": lambda p: CAS_VERSION,
    "EwsSupportedSchemas": lambda p: SUPPORTED_SCHEMAS,
    "InternalEwsUrl": lambda p: p.ews_url,
    "ExternalEwsUrl": lambda p: p.ews_url,
    "InternalMailboxServer": lambda p: p.mailbox_server,
    "ExternalMailboxServer": lambda p: p.host,
    "MailboxDN": lambda p: p.mailbox_dn,
    "ActiveDirectoryServer": lambda p: p.host,
    "GroupingInformation": lambda p: p.mailbox.database_name,
}
DOMAIN_SETTINGS: dict[str, Callable[[str], str]] = {
    "ExternalEwsUrl": ews_url,
    "ExternalEwsVersion": lambda base_url: CAS_VERSION,
}


def answer(store: Store, identity: Identity, body: bytes, base_url: str) -> tuple[int, bytes]:
    """Answer one SOAP Autodiscover request."""
    try:
        root = parse(body)
    except XMLRejected as exc:
        return 500, _fault(str(exc))
    header = root.find(f"{{{SOAP}}}Header")
    body_el = root.find(f"{{{SOAP}}}Body")
    if root.tag != f"{{{SOAP}}}Envelope" or body_el is None or not len(body_el):
        return 500, _fault("The request is not a SOAP 1.1 envelope.")
    requested = header.findtext(f"{{{A}}}RequestedServerVersion") if header is not None else None
    message = body_el[0]
    handler = _HANDLERS.get(message.tag)
    if handler is None:
        return 500, _fault(f"{local(message.tag)} is not an Autodiscover operation.")
    try:
        response = handler(store, identity, message, base_url)
    except Exception:
        log.exception("SOAP Autodiscover request failed")
        return 500, _fault("An internal server error occurred.")
    return 200, _envelope(response, (requested or "").strip() or None)


def _get_user_settings(store: Store, identity: Identity, message: etree._Element, base_url: str) -> etree._Element:
    request = message.find(f"{{{A}}}Request")
    result = etree.Element(f"{{{A}}}GetUserSettingsResponseMessage")
    names = _texts(request, "RequestedSettings/Setting")
    users = _texts(request, "Users/User/Mailbox")
    response = _response(result, "NoError" if users else "InvalidRequest", "" if users else "No user was requested.")
    container = sub(response, f"{{{A}}}UserResponses")
    for address in users:
        mailbox = find_user(store, identity, address)
        item = sub(container, f"{{{A}}}UserResponse")
        if mailbox is None:
            _status(item, "InvalidUser", f"Invalid user: '{address}'")
            _nil(item, "RedirectTarget")
            sub(item, f"{{{A}}}UserSettingErrors")
            sub(item, f"{{{A}}}UserSettings")
            continue
        _status(item, "NoError", "No error.")
        _nil(item, "RedirectTarget")
        profile = Profile(mailbox, base_url)
        _settings(item, "User", names, {name: get(profile) for name, get in USER_SETTINGS.items()})
    return result


def _get_domain_settings(store: Store, identity: Identity, message: etree._Element,
                         base_url: str) -> etree._Element:
    """Any domain hosted here; domain settings say nothing about users, so any caller may ask."""
    request = message.find(f"{{{A}}}Request")
    result = etree.Element(f"{{{A}}}GetDomainSettingsResponseMessage")
    names = _texts(request, "RequestedSettings/Setting")
    domains = [d.lower() for d in _texts(request, "Domains/Domain")]
    response = _response(result, "NoError" if domains else "InvalidRequest",
                         "" if domains else "No domain was requested.")
    hosted = {d.name.lower() for d in store.directory.domains()}
    container = sub(response, f"{{{A}}}DomainResponses")
    for domain in domains:
        item = sub(container, f"{{{A}}}DomainResponse")
        if domain not in hosted:
            _status(item, "InvalidDomain", f"Invalid domain: '{domain}'")
            sub(item, f"{{{A}}}DomainSettingErrors")
            sub(item, f"{{{A}}}DomainSettings")
        else:
            _status(item, "NoError", "No error.")
            _settings(item, "Domain", names, {name: get(base_url) for name, get in DOMAIN_SETTINGS.items()})
        _nil(item, "RedirectTarget")
    return result


_HANDLERS = {f"{{{A}}}GetUserSettingsRequestMessage": _get_user_settings,
             f"{{{A}}}GetDomainSettingsRequestMessage": _get_domain_settings}


def _texts(request: etree._Element | None, path: str) -> list[str]:
    """The text of every element at ``path`` (names in the Autodiscover namespace) under the Request."""
    if request is None:
        return []
    return [(node.text or "").strip() for node in request.iterfind("/".join(f"{{{A}}}{n}" for n in path.split("/")))]


def _response(result: etree._Element, code: str, message: str) -> etree._Element:
    response = sub(result, f"{{{A}}}Response")
    _status(response, code, message)
    return response


def _status(parent: etree._Element, code: str, message: str) -> None:
    sub(parent, f"{{{A}}}ErrorCode", code)
    sub(parent, f"{{{A}}}ErrorMessage", message)


def _nil(parent: etree._Element, name: str) -> None:
    sub(parent, f"{{{A}}}{name}", **{f"{{{XSI}}}nil": "true"})


def _settings(item: etree._Element, kind: str, names: list[str], values: dict[str, str]) -> None:
    """``kind`` is User or Domain: the two responses differ only in these element names."""
    errors = sub(item, f"{{{A}}}{kind}SettingErrors")
    settings = sub(item, f"{{{A}}}{kind}Settings")
    type_name = "a:StringSetting" if kind == "User" else "a:DomainStringSetting"
    for name in names:
        if name in values:
            setting = sub(settings, f"{{{A}}}{kind}Setting", **{f"{{{XSI}}}type": type_name})
            sub(setting, f"{{{A}}}Name", name)
            sub(setting, f"{{{A}}}Value", values[name])
        else:
            error = sub(errors, f"{{{A}}}{kind}SettingError")
            _status(error, "InvalidSetting", f"The requested setting {name!r} is not available.")
            sub(error, f"{{{A}}}SettingName", name)


def _envelope(response: etree._Element, requested: str | None) -> bytes:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP, "a": A, "wsa": WSA, "i": XSI})
    header = sub(root, f"{{{SOAP}}}Header")
    action = sub(header, f"{{{WSA}}}Action", ACTION + local(response.tag).removesuffix("Message"))
    action.set(f"{{{SOAP}}}mustUnderstand", "1")
    info = sub(header, f"{{{A}}}ServerVersionInfo")
    for name in ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber"):
        sub(info, f"{{{A}}}{name}", versions.BUILD[name])
    sub(info, f"{{{A}}}Version", versions.reported(requested))
    sub(root, f"{{{SOAP}}}Body").append(response)
    return to_bytes(root)


def _fault(message: str) -> bytes:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    fault = sub(sub(root, f"{{{SOAP}}}Body"), f"{{{SOAP}}}Fault")
    sub(fault, "faultcode", "s:Client")
    sub(fault, "faultstring", message)
    return to_bytes(root)
