"""XML text escaped exactly as lxml's serialiser escapes it, for XML written as text where building
an lxml tree would cost more than the rest of the work (EWS item responses, the recipient and
header values stored with every delivered message). Tag and attribute names come only from the
code's constants; every value goes through ``escape`` or ``escape_attribute``."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Characters XML 1.0 does not allow (lxml refuses them in text and attributes as well); printable
# text (str.isprintable, the quicker test) has none of them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_XML_ASCII = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")  # the same for ASCII text, in fewer steps


def escape(text: str) -> str:
    """Text content as lxml writes it (``&``, ``<``, ``>`` and carriage returns escaped); a
    character XML cannot carry is refused with ValueError, as lxml refuses it. Most values have
    nothing to escape and are returned as they are."""
    if text.isprintable():  # (a carriage return is not printable)
        if "&" not in text and "<" not in text and ">" not in text:
            return text
    elif (_NOT_XML_ASCII if text.isascii() else _NOT_XML).search(text) is not None:
        raise ValueError("All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def escape_attribute(value: str) -> str:
    """An attribute value as lxml writes it between double quotes."""
    if value.isprintable() and "&" not in value and "<" not in value and ">" not in value and '"' not in value:
        return value
    return escape(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def attributes(attrs: Mapping[str, str | None]) -> str:
    """`` name="value"`` for each attribute that has a value; the names are the code's constants
    (or a parsed tree's, which the parser has checked)."""
    return "".join([f' {name}="{escape_attribute(value)}"' for name, value in attrs.items() if value is not None])


def root(tag: str, prefix: str, namespace: str, content: list[str]) -> str:
    """A root element declaring its namespace prefix, holding ``content`` (written pieces), as
    lxml serialises one: ``<p:Tag xmlns:p="ns">...</p:Tag>``, or ``<p:Tag xmlns:p="ns"/>`` empty."""
    head = f'<{prefix}:{tag} xmlns:{prefix}="{namespace}"'
    return f"{head}>{''.join(content)}</{prefix}:{tag}>" if content else f"{head}/>"
