"""Properties the server derives from others, for every role that stores items."""

from __future__ import annotations

from typing import Any

from . import recipients

_REPLY_PREFIXES = ("re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr")


def derive_properties(props: dict[str, Any]) -> None:
    """Keep DisplayTo/DisplayCc/DisplayBcc in step with the recipients, and give the item the
    conversation topic of its subject unless it already has one (Thread-Topic)."""
    for element, display in (("ToRecipients", "DisplayTo"), ("CcRecipients", "DisplayCc"),
                             ("BccRecipients", "DisplayBcc")):
        if element in props:
            props[display] = recipients.display_list(props[element])
    if props.get("Subject") is not None and not props.get("ConversationTopic"):
        props["ConversationTopic"] = conversation_topic(props["Subject"])


def conversation_topic(subject: str) -> str:
    """The subject without reply and forward prefixes (RE:, FW:, AW: ...)."""
    text = subject.strip()
    while True:
        head, sep, rest = text.partition(":")
        if sep and head.strip().lower() in _REPLY_PREFIXES and len(head) <= 4:
            text = rest.strip()
        else:
            return text
