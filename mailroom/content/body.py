"""Body conversions between HTML and plain text."""

from __future__ import annotations

import html
import re

from lxml import etree
from lxml import html as lxml_html

_BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre"}


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: block elements become line breaks, scripts and styles go."""
    if not markup.strip():
        return ""
    try:
        doc = lxml_html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return re.sub(r"<[^>]+>", "", markup)
    for bad in doc.xpath("//script|//style|//head"):
        bad.drop_tree()
    for node in doc.iter():
        if isinstance(node.tag, str) and node.tag.lower() in _BLOCK:
            node.tail = "\n" + (node.tail or "")
    text = doc.text_content()
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def text_to_html(text: str) -> str:
    escaped = html.escape(text).replace("\r\n", "\n").replace("\n", "<br>\n")
    return ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head>'
            f"<body><div>{escaped}</div></body></html>")


def preview(text: str, limit: int = 255) -> str:
    return re.sub(r"\s+", " ", text).strip()[:limit]
