"""ConvertId: translate ids between EwsId, EwsLegacyId, EntryId, HexEntryId, StoreId and OwaId.
exchangelib also uses it as its version and authentication probe.

As in Exchange the conversion is of the id's format only: it reads no mailbox and reaches no
object, so it works for ids of any mailbox (what they name is checked when they are used); the
Mailbox attribute is only checked for an SMTP address's form and returned as given."""

import base64
import binascii
import re

from lxml import etree

from mailroom.store import ids

from ..errors import EWSError, SOAPFault
from ..service import Operation, require
from ..xml import local, m, sub

XSI = "http://www.w3.org/2001/XMLSchema-instance"
FORMATS = ("EwsLegacyId", "EwsId", "EntryId", "HexEntryId", "StoreId", "OwaId")
_SMTP = re.compile(r"[^@\s]+@[^@\s]+")


def decode(text: str, fmt: str) -> ids.ObjectId:
    try:
        if fmt in ("EwsId", "EwsLegacyId", "OwaId"):
            return ids.decode(text)
        if fmt in ("EntryId", "StoreId"):
            return ids.from_entry_id(base64.b64decode(text, validate=True))
        return ids.from_entry_id(bytes.fromhex(text))
    except (ids.MalformedId, binascii.Error, ValueError) as exc:
        raise EWSError("ErrorInvalidIdMalformed") from exc


def encode(oid: ids.ObjectId, fmt: str) -> str:
    if fmt in ("EwsId", "EwsLegacyId", "OwaId"):
        return oid.encode()
    if fmt in ("EntryId", "StoreId"):
        return base64.b64encode(oid.entry_id).decode("ascii")
    return oid.entry_id.hex().upper()


class ConvertId(Operation):
    name = "ConvertId"
    min_version = "Exchange2007_SP1"

    def execute(self, request: etree._Element) -> etree._Element:
        target = request.get("DestinationFormat") or ""
        if target not in FORMATS:
            raise SOAPFault("ErrorSchemaValidation", f"DestinationFormat {target!r} is not valid.")
        root, messages = self.response()

        def one(source: etree._Element, msg: etree._Element) -> None:
            if local(source.tag) != "AlternateId":
                raise EWSError("ErrorInvalidIdMalformed", "Only mailbox ids (AlternateId) can be converted.")
            fmt = source.get("Format") or ""
            if fmt not in FORMATS:
                raise EWSError("ErrorInvalidIdMalformed", f"Format {fmt!r} is not supported.")
            address = (source.get("Mailbox") or "").strip()
            if not _SMTP.fullmatch(address):
                raise EWSError("ErrorInvalidSmtpAddress", f"{address!r} is not an SMTP address.")
            oid = decode(source.get("Id") or "", fmt)
            node = sub(msg, m("AlternateId"), Format=target, Id=encode(oid, target), Mailbox=address)
            node.set(f"{{{XSI}}}type", "t:AlternateIdType")

        self.each(messages, list(require(request, m("SourceIds"))), one)
        return root
