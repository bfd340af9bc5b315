"""Raw SOAP for tests that need to send exactly what a client (or an attacker) sends."""

from __future__ import annotations

import base64

import requests
from lxml import etree

NS = {"s": "http://schemas.xmlsoap.org/soap/envelope/",
      "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
      "t": "http://schemas.microsoft.com/exchange/services/2006/types",
      "e": "http://schemas.microsoft.com/exchange/services/2006/errors"}


def envelope(body: str, version: str | None = "Exchange2016", header_extra: str = "") -> bytes:
    version_el = f'<t:RequestServerVersion Version="{version}"/>' if version else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f"<s:Header>{version_el}{header_extra}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def post(url: str, payload: bytes, user: str | None, password: str | None,
         headers: dict[str, str] | None = None) -> requests.Response:
    headers = {"Content-Type": "text/xml; charset=utf-8", **(headers or {})}
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    return requests.post(url, data=payload, headers=headers, timeout=30)


def parse(response: requests.Response) -> etree._Element:
    return etree.fromstring(response.content)


def codes(root: etree._Element) -> list[str]:
    """The ResponseCode of every response message, in order."""
    return [c.text for c in root.iterfind(".//m:ResponseCode", NS)]


def server_version(root: etree._Element) -> dict[str, str]:
    """The attributes of the ServerVersionInfo in the response's SOAP header (KeyError-free: {} if absent)."""
    info = root.find("s:Header/t:ServerVersionInfo", NS)
    return dict(info.attrib) if info is not None else {}


def fault_code(root: etree._Element) -> str | None:
    """The ResponseCode in a SOAP fault's detail, or None when the body is not a fault."""
    node = root.find("s:Body/s:Fault/detail/e:ResponseCode", NS)
    return node.text if node is not None else None
