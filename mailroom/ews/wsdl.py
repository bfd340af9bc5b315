"""What Services.wsdl and the schema say about operations this server does not implement, so
the endpoint can answer them with a per-item ErrorInvalidOperation inside the operation's own
response when the schema has room for one (with the children an error message still requires,
e.g. an empty ``m:Items`` or ``HasChanged`` false), else with a SOAP fault."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from lxml import etree

from .schema import XS
from .xml import M, T, sub

WSDL = "{http://schemas.xmlsoap.org/wsdl/}"
SOAP_BINDING = "{http://schemas.xmlsoap.org/wsdl/soap/}"
_MODELS = (f"{XS}sequence", f"{XS}choice", f"{XS}all")

Fill = tuple[tuple[str, str | None], ...]  # (element name, text; None = empty element)


@dataclass(frozen=True, slots=True)
class Shape:
    """Where a per-item error goes in an operation's response: ``message`` is the element holding
    it (None: the response element itself is the message), ``wrapped`` puts it under
    ResponseMessages, and ``fill`` is what the message must still carry."""

    response: str
    message: str | None
    wrapped: bool = False
    fill: Fill = ()


def _doc(name: str) -> etree._Element:
    with resources.files("mailroom.ews").joinpath(f"schema/{name}").open("rb") as f:
        return etree.parse(f).getroot()


def _local(qname: str | None) -> str:
    return (qname or "").rpartition(":")[2]


@cache
def operations() -> dict[str, str]:
    """Request body element name -> response body element name, for every WSDL operation."""
    wsdl = _doc("Services.wsdl")
    parts = {msg.get("name"): {p.get("name"): _local(p.get("element")) for p in msg.iter(f"{WSDL}part")}
             for msg in wsdl.iter(f"{WSDL}message")}
    port = {op.get("name"): op for op in wsdl.find(f"{WSDL}portType")}
    found: dict[str, str] = {}
    for op in wsdl.find(f"{WSDL}binding").iter(f"{WSDL}operation"):
        abstract = port[op.get("name")]
        ends = []
        for end in ("input", "output"):
            body_part = op.find(f"{WSDL}{end}/{SOAP_BINDING}body").get("parts")
            ends.append(parts[_local(abstract.find(f"{WSDL}{end}").get("message"))][body_part])
        found[ends[0]] = ends[1]
    return found


@cache
def _schema() -> tuple[dict[str, str], dict[str, etree._Element], dict[str, str]]:
    """Global message elements -> their type, complex types of both schema files by prefixed
    name ("m:X", "t:X"), and the elements ArrayOfResponseMessagesType allows -> their type."""
    messages, types_doc = _doc("messages.xsd"), _doc("types.xsd")
    elements = {e.get("name"): f"m:{_local(e.get('type'))}" for e in messages.findall(f"{XS}element")}
    types = {f"{prefix}:{c.get('name')}": c for prefix, doc in (("m", messages), ("t", types_doc))
             for c in doc.findall(f"{XS}complexType")}
    array = {e.get("name"): e.get("type") for e in types["m:ArrayOfResponseMessagesType"].iter(f"{XS}element")}
    return elements, types, array


def _ancestry(type_name: str) -> list[str]:
    """The type and the types it extends, most derived first (complex types only)."""
    types = _schema()[1]
    chain = []
    while type_name in types:
        chain.append(type_name)
        extension = types[type_name].find(f"{XS}complexContent/{XS}extension")
        type_name = extension.get("base") if extension is not None else ""
    return chain


def _own_model(type_node: etree._Element) -> etree._Element | None:
    extension = type_node.find(f"{XS}complexContent/{XS}extension")
    owner = extension if extension is not None else type_node
    return next((c for c in owner if c.tag in _MODELS), None)


def _minimal(particle: etree._Element) -> Fill | None:
    """The fewest children that satisfy a particle with empty or false values; None if impossible."""
    if particle.get("minOccurs", "1") == "0":
        return ()
    if particle.tag == f"{XS}element":
        if particle.get("type") == "xs:boolean":
            return ((particle.get("name"), "false"),)
        return ((particle.get("name"), None),) if _can_be_empty(particle.get("type") or "") else None
    children = [p for p in particle if p.tag in (f"{XS}element", *_MODELS)]
    if particle.tag == f"{XS}choice":
        return min((o for o in map(_minimal, children) if o is not None), key=len, default=None)
    return _minimal_all(children)


def _minimal_all(particles: list[etree._Element]) -> Fill | None:
    """A sequence's minimal children: every particle's, in order."""
    fills = [_minimal(p) for p in particles]
    return None if any(f is None for f in fills) else tuple(c for f in fills for c in f)  # type: ignore[union-attr]


def _can_be_empty(type_name: str) -> bool:
    """A complex type whose elements may all be absent and that requires no attribute."""
    for name in _ancestry(type_name):
        node = _schema()[1][name]
        if node.find(f"{XS}simpleContent") is not None or node.find(f".//{XS}attribute[@use='required']") is not None:
            return False
        model = _own_model(node)
        if model is not None and _minimal(model) != ():
            return False
    return bool(_ancestry(type_name))


@cache
def _fill_for_type(type_name: str) -> Fill | None:
    """What an error message of this ResponseMessageType-derived type must carry after the
    base's MessageText/ResponseCode/DescriptiveLinkKey/MessageXml."""
    fill: Fill = ()
    for name in reversed(_ancestry(type_name)):
        if name == "m:ResponseMessageType":
            continue
        model = _own_model(_schema()[1][name])
        extra = () if model is None else _minimal(model)
        if extra is None:
            return None
        fill += extra
    return fill


def error_fill(message_name: str) -> Fill:
    """The children an error message of this ResponseMessage element must still carry (the
    schema's required arrays, empty; required booleans, false)."""
    array = _schema()[2]
    return (_fill_for_type(array[message_name]) or ()) if message_name in array else ()


@cache
def error_shape(request_element: str) -> Shape | None:
    """How an error response to ``request_element`` is shaped, or None when the operation is not
    in the WSDL or its response has no room for a valid per-item error."""
    response = operations().get(request_element)
    if response is None:
        return None
    elements, types, array = _schema()
    chain = _ancestry(elements.get(response, ""))
    if "m:BaseResponseMessageType" in chain:
        message = f"{request_element}ResponseMessage"
        fill = _fill_for_type(array[message]) if message in array else None
        return None if fill is None else Shape(response, message, True, fill)
    if "m:ResponseMessageType" in chain:
        fill = _fill_for_type(chain[0])
        return None if fill is None else Shape(response, None, fill=fill)
    model = _own_model(types[chain[0]]) if chain else None
    particles = [] if model is None or model.tag != f"{XS}sequence" else list(model)
    if particles and particles[0].get("name") == "ResponseMessage" and _minimal_all(particles[1:]) == ():
        return Shape(response, "ResponseMessage")
    return None


def error_response(shape: Shape, code: str, text: str) -> etree._Element:
    """The operation's response element carrying one error message."""
    root = etree.Element(f"{{{M}}}{shape.response}", nsmap={"m": M, "t": T})
    if shape.message is None:
        msg = root
        msg.set("ResponseClass", "Error")
    else:
        parent = sub(root, f"{{{M}}}ResponseMessages") if shape.wrapped else root
        msg = sub(parent, f"{{{M}}}{shape.message}", ResponseClass="Error")
    sub(msg, f"{{{M}}}MessageText", text)
    sub(msg, f"{{{M}}}ResponseCode", code)
    sub(msg, f"{{{M}}}DescriptiveLinkKey", "0")
    for name, value in shape.fill:
        sub(msg, f"{{{M}}}{name}", value)
    return root
