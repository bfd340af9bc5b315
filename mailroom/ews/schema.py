"""What the shipped EWS schema says about item and folder properties.

The schema is the property registry: for every item type it gives the element order the
response must follow and each element's type, and UnindexedFieldURIType names every property a
client can ask for. Reading it (about 30 ms) keeps the codec generic and always in schema order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cache
from importlib import resources

from lxml import etree

XS = "{http://www.w3.org/2001/XMLSchema}"

# FieldURI prefix -> the complex type that declares those properties.
_PREFIX_TYPES = {
    "item": "ItemType", "message": "MessageType", "calendar": "CalendarItemType", "contacts": "ContactItemType",
    "distributionlist": "DistributionListType", "task": "TaskType", "postitem": "PostItemType",
    "meeting": "MeetingMessageType", "meetingRequest": "MeetingRequestMessageType",
    "sharingMessage": "SharingMessageType", "folder": "FolderType",
}

# Element name in Items / ItemAttachment -> its complex type.
ITEM_ELEMENTS = {
    "Item": "ItemType", "Message": "MessageType", "CalendarItem": "CalendarItemType", "Contact": "ContactItemType",
    "DistributionList": "DistributionListType", "MeetingMessage": "MeetingMessageType",
    "MeetingRequest": "MeetingRequestMessageType", "MeetingResponse": "MeetingResponseMessageType",
    "MeetingCancellation": "MeetingCancellationMessageType", "Task": "TaskType", "PostItem": "PostItemType",
    "SharingMessage": "SharingMessageType",
}

FOLDER_ELEMENTS = {
    "Folder": "FolderType", "CalendarFolder": "CalendarFolderType", "ContactsFolder": "ContactsFolderType",
    "SearchFolder": "SearchFolderType", "TasksFolder": "TasksFolderType",
}

SIMPLE_KINDS = {
    "xs:boolean": "bool", "xs:int": "int", "xs:long": "int", "xs:short": "int", "xs:unsignedInt": "int",
    "xs:double": "float", "xs:float": "float", "xs:dateTime": "datetime", "xs:date": "datetime",
}


@dataclass(frozen=True, slots=True)
class Element:
    name: str
    type_name: str  # e.g. "xs:string", "t:ArrayOfRecipientsType"
    simple: bool
    kind: str = "string"  # how values compare: string, bool, int, float, datetime or list


def kind_of(type_name: str) -> str:
    if type_name == "t:ArrayOfStringsType":
        return "list"
    return SIMPLE_KINDS.get(type_name, "string")


@dataclass(frozen=True, slots=True)
class FieldURI:
    uri: str
    element: str
    owner_type: str


class Schema:
    def __init__(self, types_doc: etree._Element, messages_doc: etree._Element) -> None:
        self._complex = {c.get("name"): c for c in types_doc.findall(f"{XS}complexType")}
        self._simple = {s.get("name") for s in types_doc.findall(f"{XS}simpleType")}
        self._types_doc = types_doc
        self._messages_doc = messages_doc
        self._sequences: dict[str, tuple[Element, ...]] = {}
        self.field_uris = self._field_uris()

    @functools.cache  # noqa: B019 - one Schema per process
    def enumeration(self, simple_type: str, in_messages: bool = False) -> tuple[str, ...]:
        doc = self._messages_doc if in_messages else self._types_doc
        node = doc.find(f"{XS}simpleType[@name='{simple_type}']")
        return tuple(e.get("value") for e in node.iter(f"{XS}enumeration"))

    def elements(self, complex_type: str) -> tuple[Element, ...]:
        """The type's elements in schema order, inherited ones first."""
        if complex_type not in self._sequences:
            node = self._complex[complex_type]
            inherited: tuple[Element, ...] = ()
            ext = node.find(f"{XS}complexContent/{XS}extension")
            scope = node
            if ext is not None:
                inherited = self.elements(ext.get("base").split(":", 1)[1])
                scope = ext
            own = tuple(self._element(e) for e in scope.iterchildren(f"{XS}sequence")
                        for e in e.iter(f"{XS}element") if e.get("name"))
            self._sequences[complex_type] = inherited + own
        return self._sequences[complex_type]

    def _element(self, node: etree._Element) -> Element:
        type_name = node.get("type") or ""
        local_type = type_name.split(":", 1)[-1]
        simple = type_name.startswith("xs:") or local_type in self._simple
        return Element(node.get("name"), type_name, simple, kind_of(type_name))

    def _field_uris(self) -> dict[str, FieldURI]:
        found: dict[str, FieldURI] = {}
        for uri in self.enumeration("UnindexedFieldURIType"):
            prefix, name = uri.split(":", 1)
            owner = _PREFIX_TYPES.get(prefix)
            if owner is None:
                continue
            names = {e.name for e in self.elements(owner)}
            if prefix == "folder":
                names |= {e.name for e in self.elements("BaseFolderType")} | {"SharingEffectiveRights"}
            if name in names:
                found[uri] = FieldURI(uri, name, owner)
        return found

    def element(self, complex_type: str, name: str) -> Element | None:
        for e in self.elements(complex_type):
            if e.name == name:
                return e
        return None


@cache
def schema() -> Schema:
    base = resources.files("mailroom.ews").joinpath("schema")
    with base.joinpath("types.xsd").open("rb") as f:
        types_doc = etree.parse(f).getroot()
    with base.joinpath("messages.xsd").open("rb") as f:
        messages_doc = etree.parse(f).getroot()
    return Schema(types_doc, messages_doc)
