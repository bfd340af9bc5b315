"""EWS errors: the ResponseCode an operation answers with, per item or for the whole request."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lxml import etree


class EWSError(Exception):
    """A per-item (or per-request) failure reported as a ResponseMessage with ResponseClass=Error."""

    def __init__(self, code: str, message: str = "", xml_values: dict[str, str] | None = None) -> None:
        _check(code)
        super().__init__(message or code)
        self.code = code
        self.message = message or _DEFAULT_TEXT.get(code, code)
        self.xml_values = xml_values or {}


class SOAPFault(Exception):
    """A request-level failure answered with a soap:Fault (malformed envelope, schema errors, busy)."""

    def __init__(self, code: str, message: str, fault_code: str = "Client", status: int = 500,
                 xml_values: dict[str, str] | None = None) -> None:
        _check(code)
        super().__init__(message)
        self.code = code
        self.message = message
        self.fault_code = fault_code
        self.status = status
        self.xml_values = xml_values or {}


def _check(code: str) -> None:
    if code not in response_codes():
        raise ValueError(f"{code} is not a ResponseCodeType value")


@cache
def response_codes() -> frozenset[str]:
    """Every ResponseCodeType value from the schema this server ships."""
    with resources.files("mailroom.ews").joinpath("schema/messages.xsd").open("rb") as f:
        tree = etree.parse(f)
    xs = "{http://www.w3.org/2001/XMLSchema}"
    node = tree.getroot().find(f"{xs}simpleType[@name='ResponseCodeType']")
    return frozenset(e.get("value") for e in node.iter(f"{xs}enumeration"))


_DEFAULT_TEXT = {
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorFolderNotFound": "The specified folder could not be found in the store.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the change key "
                                 "passed in the request does not match the current change key for the item.",
    "ErrorInvalidChangeKey": "The change key is invalid.",
    "ErrorChangeKeyRequired": "ChangeKey is required for this operation.",
    "ErrorFolderExists": "A folder with the specified name already exists.",
    "ErrorDeleteDistinguishedFolder": "Distinguished folders cannot be deleted.",
    "ErrorInvalidPropertySet": "The property cannot be set.",
    "ErrorInvalidPropertyRequest": "The property request is invalid.",
    "ErrorInvalidOperation": "The operation is not valid for this object.",
    "ErrorInvalidRequest": "The request is invalid.",
    "ErrorSchemaValidation": "The request failed schema validation.",
}
