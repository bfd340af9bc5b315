"""The SOAP envelope: read headers, dispatch to the operation, wrap the response, and turn any
failure into a SOAP fault that still carries ServerVersionInfo (exchangelib reads the version
from error responses too)."""

from __future__ import annotations

import copy
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from importlib import import_module, resources
from pkgutil import iter_modules

from lxml import etree

from mailroom.access import audit
from mailroom.access.identity import Identity
from mailroom.server import config
from mailroom.store import Store
from mailroom.throttling.budget import Throttled, Ticket
from mailroom.transport.envelope import Submission

from . import impersonation, timezones, versions, wsdl
from .context import Context
from .errors import EWSError, SOAPFault
from .service import OPERATIONS, Written
from .streaming import Stream
from .xml import SOAP, SOAP12, E, M, T, XMLRejected, first_children, local, parse, sub, t, to_bytes

log = logging.getLogger(__name__)


def load_operations() -> None:
    package = "mailroom.ews.operations"
    for info in iter_modules([str(resources.files(package))]):
        import_module(f"{package}.{info.name}")


class Envelope:
    """What a request's SOAP header says. ``version`` is the requested version as sent (checked
    by ``process``, so that even the fault for an unknown one can report the server's version)."""

    def __init__(self, root: etree._Element) -> None:
        soap_ns = _SOAP_OF_ENVELOPE.get(root.tag)
        if soap_ns is None:
            raise SOAPFault("ErrorSchemaValidation", "The request is not a SOAP envelope.")
        self.soap_ns = soap_ns
        parts = first_children(root)
        header = parts.get(f"{{{self.soap_ns}}}Header")
        body = parts.get(f"{{{self.soap_ns}}}Body")
        if body is None or len(body) == 0:
            raise SOAPFault("ErrorSchemaValidation", "The SOAP body is missing or empty.")
        self.operation = body[0]
        self.version = versions.DEFAULT
        self.tz: tzinfo | None = None
        self.impersonation: etree._Element | None = None
        self.culture = "en-US"
        if header is not None:
            self._read_header(header)

    def _read_header(self, header: etree._Element) -> None:
        found = first_children(header)
        requested = found.get(_VERSION_TAG)
        if requested is not None:
            self.version = requested.get("Version") or ""
        tzc = found.get(_TZ_CONTEXT_TAG)
        if tzc is not None:
            definition = tzc.find(t("TimeZoneDefinition"))
            if definition is not None and definition.get("Id"):
                self.tz = timezones.zone_for_windows_id(definition.get("Id") or "")
        culture = found.get(_CULTURE_TAG)
        if culture is not None and culture.text:
            self.culture = culture.text.strip()
        self.impersonation = found.get(_IMPERSONATION_TAG)


_SOAP_OF_ENVELOPE = {f"{{{ns}}}Envelope": ns for ns in (SOAP, SOAP12)}
_VERSION_TAG, _TZ_CONTEXT_TAG = t("RequestServerVersion"), t("TimeZoneContext")
_CULTURE_TAG, _IMPERSONATION_TAG = t("MailboxCulture"), t("ExchangeImpersonation")


@dataclass(frozen=True)
class Request:
    """What the HTTP layer knows about a request besides its body: ``client_ip`` (the HTTP peer)
    goes into the audit log; ``audit_owner`` logs owners' own requests too; ``notifications`` is
    False for a session that asked for none (Subscribe then fails); ``submit`` hands a message to
    the transport (from this worker thread); the time the request takes is charged to the
    caller's budget (``ticket``)."""

    client_ip: str = ""
    audit_owner: bool = False
    notifications: bool = True
    submit: Callable[[Submission], str] | None = None
    ticket: Ticket | None = None
    max_message_bytes: int = config.default("transport.max_message_bytes")  # the transport's limit, for MailTips


def process(store: Store, identity: Identity, body: bytes, request: Request = Request()) -> tuple[int, bytes | Stream]:
    """Answer one EWS request; returns the HTTP status and the response envelope, or the Stream of
    envelopes to send when the operation answers with one (GetStreamingEvents)."""
    started = time.monotonic()
    try:
        return _process(store, identity, body, request)
    finally:
        if request.ticket is not None:
            request.ticket.charge(time.monotonic() - started)


def _process(store: Store, identity: Identity, body: bytes, request: Request) -> tuple[int, bytes | Stream]:
    version: str | None = None  # until the request is read, faults report the newest version
    try:
        env = Envelope(parse(body))
        version = env.version
        versions.require_known(version)
        op_name = local(env.operation.tag)
        if request.ticket is not None:
            request.ticket.action = op_name
        if env.impersonation is not None:
            identity = impersonation.impersonated(store, identity, env.impersonation, op_name, request.client_ip)
        op_cls = OPERATIONS.get(op_name) if env.operation.tag == f"{{{M}}}{op_name}" else None
        if op_cls is None:
            return 200, _envelope(_unsupported(env.operation), version)
        if not versions.at_least(version, op_cls.min_version):
            raise SOAPFault("ErrorInvalidSchemaVersionForMailboxVersion",
                            f"{op_name} needs RequestServerVersion {op_cls.min_version} or later.")
        trail = audit.Trail(identity, request.client_ip, request.audit_owner)
        ctx = Context(store=store, identity=identity, version=version, culture=env.culture, trail=trail,
                      notifications=request.notifications, submit=request.submit, ticket=request.ticket,
                      max_message_bytes=request.max_message_bytes)
        if env.tz is not None:
            ctx.tz = env.tz
        operation = op_cls(ctx)
        if not op_cls.writes:
            operation.parent = skeleton(version)
        response = _audited(store, trail, op_name, lambda: operation.execute(env.operation))
        return 200, ctx.stream if ctx.stream is not None else _envelope(response, version)
    except XMLRejected as exc:
        return fault(SOAPFault("ErrorSchemaValidation", str(exc)), version)
    except SOAPFault as exc:
        return fault(exc, version)
    except Throttled as exc:
        return fault(throttled_fault(exc), version)
    except EWSError as exc:
        return fault(SOAPFault(exc.code, exc.message, fault_code="Client"), version)
    except Exception:
        log.exception("EWS request failed")
        return fault(SOAPFault("ErrorInternalServerError", "An internal server error occurred.",
                               fault_code="Server"), version)


def _audited(store: Store, trail: audit.Trail, operation: str,
             run: Callable[[], etree._Element | Written]) -> etree._Element | Written:
    """Run the operation and write what it reached to the audit log, with its result: the first
    error code in the response other than the refusals the trail already knows, or NoError."""
    result, response = "ErrorInternalServerError", None
    try:
        response = run()
        return response
    except (SOAPFault, EWSError) as exc:
        result = exc.code
        raise
    finally:
        if trail.recording():  # else (an owner in their own mailbox) there is nothing to write or look up
            if response is not None:
                codes = iter(response.codes) if isinstance(response, Written) else (
                    code.text for code in response.iter(f"{{{M}}}ResponseCode"))
                result = next((code for code in codes if code not in ("NoError", audit.DENIED)), "NoError")
            audit.write(store, trail.records(operation, result))


def throttled_fault(exc: Throttled) -> SOAPFault:
    """A refused request as Exchange answers it: a SOAP fault (HTTP 500) whose detail carries the
    ResponseCode and, for ErrorServerBusy, BackOffMilliseconds in MessageXml."""
    backoff = {"BackOffMilliseconds": str(exc.backoff_ms)} if exc.backoff_ms is not None else {}
    return SOAPFault(exc.code, exc.message, xml_values=backoff)


def _unsupported(operation: etree._Element) -> etree._Element:
    """An operation this server does not implement: a per-item ErrorInvalidOperation in the
    operation's own response when the schema has room for one (never a bare HTTP 500)."""
    name = local(operation.tag)
    if etree.QName(operation).namespace != M or name not in wsdl.operations():
        raise SOAPFault("ErrorSchemaValidation", f"{name} is not an Exchange Web Services operation.")
    text = f"The {name} operation is not supported by this server."
    shape = wsdl.error_shape(name)
    if shape is None:
        raise SOAPFault("ErrorInvalidOperation", text)
    return wsdl.error_response(shape, "ErrorInvalidOperation", text)


def _server_version(header: etree._Element, version: str | None) -> None:
    sub(header, t("ServerVersionInfo"), **versions.BUILD, Version=versions.reported(version))


def skeleton(version: str | None) -> etree._Element:
    """A response envelope with its header, returning the empty Body for the response to grow in
    (built in place, a large response is not moved between documents). Copied from one built
    once per version: copying is several times cheaper than building."""
    return copy.deepcopy(_skeleton(versions.reported(version)))[1]


@functools.cache
def _skeleton(reported: str) -> etree._Element:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP, "m": M, "t": T})
    _server_version(sub(root, f"{{{SOAP}}}Header"), reported)
    sub(root, f"{{{SOAP}}}Body")
    return root


@functools.cache
def _wrapping(reported: str) -> tuple[bytes, bytes]:
    """The envelope before and after the response in its Body, for a written response."""
    head, body, tail = to_bytes(_skeleton(reported)).partition(b"<s:Body/>")
    assert body, "the skeleton's Body is empty"
    return head + b"<s:Body>", b"</s:Body>" + tail


def _envelope(response: etree._Element | Written, version: str | None) -> bytes:
    if isinstance(response, Written):
        head, tail = _wrapping(versions.reported(version))
        return head + response.finish().encode() + tail
    if response.getparent() is None:
        skeleton(version).append(response)
    return to_bytes(response.getroottree().getroot())


def fault(exc: SOAPFault, version: str | None = None) -> tuple[int, bytes]:
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP, "e": E, "t": T})
    _server_version(sub(root, f"{{{SOAP}}}Header"), version)
    body = sub(root, f"{{{SOAP}}}Body")
    node = sub(body, f"{{{SOAP}}}Fault")
    code = etree.SubElement(node, "faultcode", nsmap={"a": E})
    code.text = f"a:{exc.code}" if exc.fault_code == "Client" else "s:Server"
    sub(node, "faultstring", exc.message)
    detail = sub(node, "detail")
    sub(detail, f"{{{E}}}ResponseCode", exc.code)
    sub(detail, f"{{{E}}}Message", exc.message)
    if exc.xml_values:
        xml = sub(detail, t("MessageXml"))
        for key, value in exc.xml_values.items():
            sub(xml, t("Value"), value, Name=key)
    return exc.status, to_bytes(root)
