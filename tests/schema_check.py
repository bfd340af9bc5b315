"""Validates EWS responses against the official schema (../shared/ews-schema, shipped in the package)."""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources

import xmlschema
from lxml import etree

SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"


@cache
def ews_schema() -> xmlschema.XMLSchema:
    path = resources.files("mailroom.ews").joinpath("schema/messages.xsd")
    return xmlschema.XMLSchema(str(path), allow="local")


_lock = threading.Lock()


def problems(payload: bytes) -> list[str]:
    """Schema violations in one response envelope (empty when it is valid)."""
    root = etree.fromstring(payload)
    found: list[str] = []
    header = root.find(f"{SOAP}Header")
    if header is None or not len(header):
        found.append("response has no SOAP header (ServerVersionInfo)")
    body = root.find(f"{SOAP}Body")
    parts = list(header) if header is not None else []
    if body is not None and len(body) and body[0].tag != f"{SOAP}Fault":
        parts.append(body[0])
    schema = ews_schema()
    with _lock:
        for part in parts:
            # The envelope's prefixes, which xsi:type values (ConvertId's AlternateId) refer to.
            namespaces = {prefix: uri for prefix, uri in part.nsmap.items() if prefix}
            for error in schema.iter_errors(part, namespaces=namespaces):
                found.append(f"{etree.QName(part).localname}: {error.reason} at {error.path}")
                break
    return found
