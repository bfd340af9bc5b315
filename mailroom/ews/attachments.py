"""Attachments in and out of XML (file attachments and item attachments)."""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from mailroom.store import ids
from mailroom.store.model import Attachment, Item, Mailbox

from .errors import EWSError
from .xml import bool_text, local, sub, t, xml_bool

ITEM_TYPES = ("Item", "Message", "CalendarItem", "Contact", "DistributionList", "MeetingMessage", "MeetingRequest",
              "MeetingResponse", "MeetingCancellation", "Task", "PostItem", "SharingMessage")


def parse_attachments(container: etree._Element) -> list[Attachment]:
    return [parse_attachment(node) for node in container]


def parse_attachment(node: etree._Element) -> Attachment:
    kind = local(node.tag)
    if kind not in ("FileAttachment", "ItemAttachment", "ReferenceAttachment"):
        raise EWSError("ErrorInvalidAttachmentType" if kind else "ErrorInvalidRequest",
                       f"{kind} is not an attachment type.")
    if kind == "ReferenceAttachment":
        raise EWSError("ErrorInvalidAttachmentType", "Reference attachments are not supported.")
    att = Attachment(kind="file" if kind == "FileAttachment" else "item")
    att.name = node.findtext(t("Name"))
    att.content_type = node.findtext(t("ContentType"))
    att.content_id = node.findtext(t("ContentId"))
    att.content_location = node.findtext(t("ContentLocation"))
    att.is_inline = xml_bool(node.findtext(t("IsInline")))
    if att.kind == "file":
        att.is_contact_photo = xml_bool(node.findtext(t("IsContactPhoto")))
        try:
            att.content = base64.b64decode(node.findtext(t("Content")) or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EWSError("ErrorInvalidRequest", "Attachment Content is not valid base64.") from exc
        att.content_type = att.content_type or "application/octet-stream"
    else:
        inner = next((c for c in node if local(c.tag) in ITEM_TYPES), None)
        if inner is None:
            raise EWSError("ErrorInvalidRequest", "An item attachment needs an item.")
        att.content = etree.tostring(inner)
        att.content_type = att.content_type or "message/rfc822"
    att.size = len(att.content)
    return att


def attachment_id(mailbox: Mailbox, item: Item, att: Attachment) -> str:
    return ids.attachment_id(mailbox.guid, item.id, att.id or 0)


def render(parent: etree._Element, mailbox: Mailbox, item: Item, att: Attachment, full: bool) -> etree._Element:
    """An attachment element; ``full`` adds the content (GetAttachment) or the attached item."""
    node = sub(parent, t("FileAttachment" if att.kind == "file" else "ItemAttachment"))
    sub(node, t("AttachmentId"), Id=attachment_id(mailbox, item, att))
    for name, value in (("Name", att.name), ("ContentType", att.content_type), ("ContentId", att.content_id),
                        ("ContentLocation", att.content_location)):
        if value is not None:
            sub(node, t(name), value)
    sub(node, t("Size"), str(att.size))
    sub(node, t("LastModifiedTime"), att.last_modified)
    sub(node, t("IsInline"), bool_text(att.is_inline))
    if att.kind == "file":
        sub(node, t("IsContactPhoto"), bool_text(att.is_contact_photo))
        if full:
            sub(node, t("Content"), base64.b64encode(att.content).decode("ascii"))
    elif full and att.content:
        node.append(etree.fromstring(att.content))
    return node


def render_list(parent: etree._Element, mailbox: Mailbox, item: Item) -> None:
    for att in item.attachments:
        render(parent, mailbox, item, att, full=False)
