"""ExtendedFieldURI and ExtendedProperty: MAPI properties by tag or by named property."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, tzinfo

from lxml import etree

from mailroom.store.model import ExtendedValue, extended_key

from .dates import to_utc_text
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
# Signed ranges of the integer types ([MS-OXCDATA] 2.11.1).
_INT_BITS = {"Short": 16, "Integer": 32, "Long": 64, "Currency": 64}
# Types with no value a client can set or read ([MS-OXWSXPROP]).
_NO_VALUE = frozenset({"Error", "Null", "Object", "ObjectArray"})


@dataclass(frozen=True, slots=True)
class ExtendedField:
    """A parsed ExtendedFieldURI; ``attrs`` are kept to echo the caller's own naming back."""

    key: str
    prop_type: str
    attrs: tuple[tuple[str, str], ...]

    @property
    def base_type(self) -> str:
        """The type of one value (``Integer`` for ``IntegerArray``)."""
        return self.prop_type.removesuffix("Array")

    @property
    def kind(self) -> str:
        """How one value compares in restrictions and sorts."""
        return KINDS.get(self.base_type, "string")

    @property
    def multi(self) -> bool:
        return self.prop_type in ARRAY_TYPES

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
        number = _int(tag, "PropertyTag")
        if 0x8000 <= number <= 0xFFFE:  # named-property range: only reachable through a property set
            raise EWSError("ErrorNoPropertyTagForCustomProperties",
                           "PropertyTag cannot name a custom (named) property; use a property set.")
        key = extended_key(tag=number)
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


def parse_property(node: etree._Element, tz: tzinfo = UTC) -> tuple[ExtendedField, ExtendedValue]:
    """An ExtendedProperty element; values are checked against the type and kept in the form
    Exchange returns them (booleans as true/false, SystemTime in UTC, a naive one read in ``tz``)."""
    field_node = node.find(t("ExtendedFieldURI"))
    if field_node is None:
        raise SOAPFault("ErrorSchemaValidation", "ExtendedProperty needs an ExtendedFieldURI.")
    field = parse_field(field_node)
    if field.prop_type in _NO_VALUE:
        raise EWSError("ErrorInvalidExtendedProperty", f"A {field.prop_type} property cannot be set.")
    value_node = node.find(t("Value"))
    values_node = node.find(t("Values"))
    if field.multi:
        if values_node is None or value_node is not None:
            raise EWSError("ErrorInvalidExtendedPropertyValue", "An array property needs Values.")
        value: str | list[str] = [constant(field, v.text or "", tz) for v in values_node.findall(t("Value"))]
    else:
        if value_node is None or values_node is not None:
            raise EWSError("ErrorInvalidExtendedPropertyValue", "A single-valued property needs Value.")
        value = constant(field, value_node.text or "", tz)
    return field, ExtendedValue(field.key, field.prop_type, value)


def constant(field: ExtendedField, text: str, tz: tzinfo = UTC) -> str:
    """One value of ``field`` in its stored text form; ErrorInvalidExtendedPropertyValue if it is not one."""
    base = field.base_type
    try:
        if base == "Boolean":
            if text.strip().lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return "true" if text.strip().lower() in ("true", "1") else "false"
        if base in _INT_BITS:
            number, bits = int(text), _INT_BITS[base]
            if not -(1 << (bits - 1)) <= number < 1 << (bits - 1):
                raise ValueError(text)
            return str(number)
        if base in ("Float", "Double", "ApplicationTime"):
            float(text)
            return text.strip()
        if base == "SystemTime":
            return to_utc_text(text, tz)
        if base == "Binary":
            base64.b64decode(text, validate=True)
        elif base == "CLSID":
            uuid.UUID(text)
    except (ValueError, binascii.Error, EWSError) as exc:
        raise EWSError("ErrorInvalidExtendedPropertyValue",
                       f"{text!r} is not a valid {base} value.") from exc
    return text


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
