"""ExtendedFieldURI and ExtendedProperty: MAPI properties by tag or by named property."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from mailroom.store.model import ExtendedValue, extended_key

from .errors import EWSError, SOAPFault
from .xml import sub, t

# [MS-OXPROPS] 1.3.2: the property sets EWS names by DistinguishedPropertySetId.
PROPERTY_SETS = {
    "Meeting": "6ed8da90-450b-101b-98da-00aa003f1305",
    "Appointment": "00062002-0000-0000-c000-000000000046",
    "Common": "00062008-0000-0000-c000-000000000046",
    "PublicStrings": "00020329-0000-0000-c000-000000000046",
    "Address": "00062004-0000-0000-c000-000000000046",
    "InternetHeaders": "00020386-0000-0000-c000-000000000046",
    "CalendarAssistant": "11000e07-b51b-40d6-af21-caa85edab1d0",
    "UnifiedMessaging": "4442858e-a9e3-4e80-b900-317a210cc15b",
    "Task": "00062003-0000-0000-c000-000000000046",
    "Sharing": "00062040-0000-0000-c000-000000000046",
}

ARRAY_TYPES = frozenset({
    "ApplicationTimeArray", "BinaryArray", "CLSIDArray", "CurrencyArray", "DoubleArray", "FloatArray",
    "IntegerArray", "LongArray", "ShortArray", "StringArray", "SystemTimeArray", "ObjectArray",
})

KINDS = {
    "Boolean": "bool", "Short": "int", "Integer": "int", "Long": "int", "Float": "float", "Double": "float",
    "Currency": "int", "ApplicationTime": "float", "SystemTime": "datetime", "Binary": "binary",
}


@dataclass(frozen=True, slots=True)
class ExtendedField:
    """A parsed ExtendedFieldURI; ``attrs`` are kept to echo the caller's own naming back."""

    key: str
    prop_type: str
    attrs: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        return KINDS.get(self.prop_type, "string")

    def element(self, parent: etree._Element) -> etree._Element:
        return sub(parent, t("ExtendedFieldURI"), **dict(self.attrs))


def _int(text: str, what: str) -> int:
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError as exc:
        raise SOAPFault("ErrorSchemaValidation", f"{what} {text!r} is not a number.") from exc


def parse_field(node: etree._Element) -> ExtendedField:
    prop_type = node.get("PropertyType") or ""
    if not prop_type:
        raise SOAPFault("ErrorSchemaValidation", "ExtendedFieldURI needs a PropertyType.")
    tag, dset, set_id = node.get("PropertyTag"), node.get("DistinguishedPropertySetId"), node.get("PropertySetId")
    name, prop_id = node.get("PropertyName"), node.get("PropertyId")
    if tag is not None:
        if dset or set_id or name or prop_id:
            raise EWSError("ErrorInvalidExtendedProperty", "PropertyTag cannot be combined with a property set.")
        key = extended_key(tag=_int(tag, "PropertyTag"))
    else:
        guid = PROPERTY_SETS.get(dset or "") if dset else (set_id or "").lower()
        if not guid or (name is None) == (prop_id is None):
            raise EWSError("ErrorInvalidExtendedProperty",
                           "A named property needs a property set and exactly one of PropertyName or PropertyId.")
        key = extended_key(set_guid=guid, name=name) if name is not None else \
            extended_key(set_guid=guid, prop_id=_int(prop_id or "0", "PropertyId"))
    attrs = tuple((k, v) for k, v in node.attrib.items() if k in (
        "DistinguishedPropertySetId", "PropertySetId", "PropertyTag", "PropertyName", "PropertyId", "PropertyType"))
    return ExtendedField(key, prop_type, attrs)


def parse_property(node: etree._Element) -> tuple[ExtendedField, ExtendedValue]:
    field_node = node.find(t("ExtendedFieldURI"))
    if field_node is None:
        raise SOAPFault("ErrorSchemaValidation", "ExtendedProperty needs an ExtendedFieldURI.")
    field = parse_field(field_node)
    value_node = node.find(t("Value"))
    values_node = node.find(t("Values"))
    if field.prop_type in ARRAY_TYPES:
        if values_node is None:
            raise EWSError("ErrorInvalidExtendedPropertyValue", "An array property needs Values.")
        value: str | list[str] = [v.text or "" for v in values_node.findall(t("Value"))]
    else:
        if value_node is None:
            raise EWSError("ErrorInvalidExtendedPropertyValue", "A single-valued property needs Value.")
        value = value_node.text or ""
    return field, ExtendedValue(field.key, field.prop_type, value)


def property_element(parent: etree._Element, field: ExtendedField, value: ExtendedValue) -> None:
    node = sub(parent, t("ExtendedProperty"))
    field.element(node)
    if isinstance(value.value, list):
        values = sub(node, t("Values"))
        for v in value.value:
            sub(values, t("Value"), v)
    else:
        sub(node, t("Value"), value.value)


def field_for_stored(value: ExtendedValue) -> ExtendedField:
    """An ExtendedFieldURI naming a stored property the canonical way (for AllProperties-style output)."""
    key = value.key
    if key.startswith("tag:"):
        attrs = (("PropertyTag", key[4:]), ("PropertyType", value.prop_type))
    else:
        _, guid, how, ident = key.split(":", 3)
        attrs = (("PropertySetId", guid), ("PropertyName" if how == "name" else "PropertyId",
                                           ident if how == "name" else str(int(ident, 16))),
                 ("PropertyType", value.prop_type))
    return ExtendedField(key, value.prop_type, attrs)
