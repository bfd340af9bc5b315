"""Property paths (FieldURI, IndexedFieldURI, ExtendedFieldURI) and response shapes."""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from .errors import EWSError, SOAPFault
from .extended import ExtendedField, parse_field
from .schema import FieldURI, schema
from .xml import first_children, local, t

# IndexedFieldURI values name one entry of a dictionary property.
INDEXED_CONTAINERS = {
    "contacts:ImAddress": "ImAddresses", "contacts:PhysicalAddress:Street": "PhysicalAddresses",
    "contacts:PhysicalAddress:City": "PhysicalAddresses", "contacts:PhysicalAddress:State": "PhysicalAddresses",
    "contacts:PhysicalAddress:CountryOrRegion": "PhysicalAddresses",
    "contacts:PhysicalAddress:PostalCode": "PhysicalAddresses", "contacts:PhoneNumber": "PhoneNumbers",
    "contacts:EmailAddress": "EmailAddresses", "item:InternetMessageHeader": "InternetMessageHeaders",
}


@dataclass(frozen=True, slots=True)
class FieldPath:
    uri: str
    element: str


@dataclass(frozen=True, slots=True)
class IndexedPath:
    uri: str
    element: str  # the container element
    index: str


Path = FieldPath | IndexedPath | ExtendedField


def parse_path(node: etree._Element) -> Path:
    name = local(node.tag)
    if name == "FieldURI":
        uri = node.get("FieldURI") or ""
        known: FieldURI | None = schema().field_uris.get(uri)
        if known is not None:
            return FieldPath(uri, known.element)
        if uri in schema().enumeration("UnindexedFieldURIType"):
            # Valid, but declared on a type the prefix does not name (e.g. meeting:ProposedStart):
            # returned wherever an item type has an element of that name.
            return FieldPath(uri, uri.split(":", 1)[1])
        raise SOAPFault("ErrorSchemaValidation", f"{uri!r} is not a valid FieldURI.")
    if name == "IndexedFieldURI":
        uri = node.get("FieldURI") or ""
        container = INDEXED_CONTAINERS.get(uri)
        if container is None:
            raise EWSError("ErrorInvalidPropertyRequest", f"The indexed property {uri} is not supported.")
        return IndexedPath(uri, container, node.get("FieldIndex") or "")
    if name == "ExtendedFieldURI":
        return parse_field(node)
    raise SOAPFault("ErrorSchemaValidation", f"{name} is not a property path.")


def first_path(parent: etree._Element) -> Path:
    for child in parent:
        if local(child.tag) in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI"):
            return parse_path(child)
    raise SOAPFault("ErrorSchemaValidation", "A property path is required.")


_BASE_SHAPE, _INCLUDE_MIME, _BODY_TYPE = t("BaseShape"), t("IncludeMimeContent"), t("BodyType")
_ADDITIONAL = t("AdditionalProperties")


@dataclass
class Shape:
    """ItemShape / FolderShape: the base shape plus additional properties."""

    base: str = "Default"
    body_type: str = "Best"
    include_mime: bool = False
    fields: set[str] = field(default_factory=set)  # element names asked for by FieldURI
    indexed: list[IndexedPath] = field(default_factory=list)
    extended: list[ExtendedField] = field(default_factory=list)

    @classmethod
    def parse(cls, node: etree._Element | None) -> Shape:
        if node is None:
            raise SOAPFault("ErrorSchemaValidation", "The request needs an ItemShape or FolderShape.")
        children = first_children(node)
        base = children.get(_BASE_SHAPE)
        if base is None or base.text not in ("IdOnly", "Default", "AllProperties", "PcxPeopleSearch"):
            raise SOAPFault("ErrorSchemaValidation", "BaseShape must be IdOnly, Default or AllProperties.")
        shape = cls(base=base.text)
        mime = children.get(_INCLUDE_MIME)
        shape.include_mime = mime is not None and (mime.text or "").strip().lower() == "true"
        body_type = children.get(_BODY_TYPE)
        if body_type is not None and body_type.text:
            shape.body_type = body_type.text.strip()
        extra = children.get(_ADDITIONAL)
        if extra is not None:
            for child in extra:
                path = parse_path(child)
                if isinstance(path, FieldPath):
                    shape.fields.add(path.element)
                elif isinstance(path, IndexedPath):
                    shape.indexed.append(path)
                else:
                    shape.extended.append(path)
        return shape
