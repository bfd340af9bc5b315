"""POX Autodiscover (``/autodiscover/autodiscover.xml``): the Outlook request and response schemas
of [MS-OXDSCLI]. The answer names the EWS URL in an EXCH (inside) and an EXPR (outside) block."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from lxml import etree

from mailroom.access.identity import Identity
from mailroom.ews.xml import XMLRejected, parse, sub, to_bytes
from mailroom.store import Store

from . import Profile, find_user

log = logging.getLogger(__name__)

REQUEST = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
BASE = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"

NOT_FOUND = ("500", "The e-mail address cannot be found.")
INVALID_REQUEST = ("600", "Invalid Request")
NO_PROVIDER = ("601", "The requested response schema is not available.")


class _Refused(Exception):
    """The request gets a POX Error response with this (code, message)."""

    def __init__(self, error: tuple[str, str]) -> None:
        super().__init__(error[1])
        self.error = error


def answer(store: Store, identity: Identity, body: bytes, base_url: str) -> tuple[int, bytes]:
    """Answer one POX request; errors are Autodiscover Error responses with HTTP 200, as Exchange sends."""
    try:
        address = _requested_address(body)
        mailbox = find_user(store, identity, address)
        if mailbox is None:
            raise _Refused(NOT_FOUND)
        return 200, to_bytes(_settings(Profile(mailbox, base_url)))
    except _Refused as exc:
        return 200, to_bytes(_error(*exc.error))
    except Exception:
        log.exception("POX Autodiscover request failed")
        return 500, to_bytes(_error("603", "An internal server error occurred."))


def _requested_address(body: bytes) -> str:
    try:
        root = parse(body)
    except XMLRejected as exc:
        raise _Refused(INVALID_REQUEST) from exc
    request = root.find(f"{{{REQUEST}}}Request")
    if root.tag != f"{{{REQUEST}}}Autodiscover" or request is None:
        raise _Refused(INVALID_REQUEST)
    schema = (request.findtext(f"{{{REQUEST}}}AcceptableResponseSchema") or "").strip()
    if schema != OUTLOOK:
        raise _Refused(NO_PROVIDER)
    address = (request.findtext(f"{{{REQUEST}}}EMailAddress") or "").strip()
    if not address:
        raise _Refused(INVALID_REQUEST)
    return address


def _settings(profile: Profile) -> etree._Element:
    root = etree.Element(f"{{{BASE}}}Autodiscover", nsmap={None: BASE})
    response = etree.SubElement(root, f"{{{OUTLOOK}}}Response", nsmap={None: OUTLOOK})
    user = _add(response, "User")
    _add(user, "DisplayName", profile.mailbox.display_name)
    _add(user, "LegacyDN", profile.legacy_dn)
    _add(user, "AutoDiscoverSMTPAddress", profile.mailbox.address)
    _add(user, "DeploymentId", profile.deployment_id)
    account = _add(response, "Account")
    _add(account, "AccountType", "email")
    _add(account, "Action", "settings")
    _add(account, "MicrosoftOnline", "False")
    inside = _add(account, "Protocol")
    _add(inside, "Type", "EXCH")
    _add(inside, "Server", profile.mailbox_server)
    _add(inside, "ServerDN", profile.server_dn)
    _add(inside, "MdbDN", profile.mailbox_dn)
    _web_services(inside, profile)
    outside = _add(account, "Protocol")
    _add(outside, "Type", "EXPR")
    _add(outside, "Server", profile.host)
    _add(outside, "SSL", "On" if profile.secure else "Off")
    _add(outside, "AuthPackage", "Basic")
    _web_services(outside, profile)
    return root


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    return sub(parent, f"{{{OUTLOOK}}}{name}", text)


def _web_services(protocol: etree._Element, profile: Profile) -> None:
    """Availability, EWS, management and Out of Office all live at the one EWS endpoint."""
    for name in ("ASUrl", "EwsUrl", "EmwsUrl", "OOFUrl"):
        _add(protocol, name, profile.ews_url)


def _error(code: str, message: str) -> etree._Element:
    root = etree.Element(f"{{{BASE}}}Autodiscover", nsmap={None: BASE})
    response = sub(root, f"{{{BASE}}}Response")
    now = datetime.now(UTC)
    error = sub(response, f"{{{BASE}}}Error", Time=now.strftime("%H:%M:%S.%f"), Id=str(now.microsecond))
    sub(error, f"{{{BASE}}}ErrorCode", code)
    sub(error, f"{{{BASE}}}Message", message)
    sub(error, f"{{{BASE}}}DebugData")
    return root
