"""A disclaimer (footer) agent: appends configured text to the body of messages from chosen
sender domains, once per message, the way an organisation's legal footer is added.

Settings (``[agents.disclaimer]``): ``text`` (required), ``html`` (default: ``text`` escaped),
``sender_domains`` (list; empty means every sender).
"""

from __future__ import annotations

import html
from email.message import EmailMessage
from typing import Any, ClassVar

from . import MailItem, TransportAgent

APPLIED = "X-Mailroom-Disclaimer"


class DisclaimerAgent(TransportAgent):
    name: ClassVar[str] = "disclaimer"
    priority: ClassVar[int] = 200

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        text = settings.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("agents.disclaimer.text must be a non-empty string")
        self.text = text
        self.html = settings.get("html") or f"<p>{html.escape(text)}</p>"
        self.sender_domains = {d.lower() for d in settings.get("sender_domains", [])}

    def on_submitted(self, item: MailItem) -> None:
        message = item.message
        if message[APPLIED] is not None or not self._applies(item.mail_from):
            return
        parts = _body_parts(message)
        for part in parts:
            self._append(part)
        if parts:
            message[APPLIED] = "applied"

    def _applies(self, sender: str) -> bool:
        return not self.sender_domains or sender.rpartition("@")[2].lower() in self.sender_domains

    def _append(self, part: EmailMessage) -> None:
        subtype = part.get_content_subtype()
        content = part.get_content()
        if subtype == "plain":
            content = f"{content.rstrip()}\n\n-- \n{self.text}\n"
        else:
            at = content.lower().rfind("</body>")
            content = f"{content[:at]}{self.html}{content[at:]}" if at >= 0 else content + self.html
        part.set_content(content, subtype=subtype, charset="utf-8")


def _body_parts(part: EmailMessage) -> list[EmailMessage]:
    """The text parts that make up the body: not attachments, nothing inside an attached message."""
    if part.get_content_type() == "message/rfc822" or part.is_attachment():
        return []
    if part.is_multipart():
        return [found for child in part.iter_parts() for found in _body_parts(child)]  # type: ignore[arg-type]
    return [part] if part.get_content_type() in ("text/plain", "text/html") else []
