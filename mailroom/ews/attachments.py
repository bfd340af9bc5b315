"""Attachments in and out of XML. A file attachment carries its bytes; an item attachment carries
its item, kept as a content snapshot and rendered through the item codec like any other item."""

from __future__ import annotations

import base64
import binascii
from copy import deepcopy

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import mime, snapshot
from mailroom.store import ids
from mailroom.store.model import Attachment, Item, Mailbox, NewItem

from .context import Context
from .errors import EWSError
from .items import item_id_attrs, parse_item
from .items import render_element as render_item
from .paths import Shape
from .schema import ITEM_ELEMENTS
from .service import Operation
from .xml import bool_text, local, sub, t, xml_bool

# Properties of a stored item that an attached item does not have.
_NOT_ATTACHED = ("ItemId", "ParentFolderId", "InstanceKey")


# -- requests -----------------------------------------------------------------------------------
def parse_attachments(container: etree._Element, ctx: Context) -> list[Attachment]:
    return [parse_attachment(node, ctx) for node in container]


def parse_attachment(node: etree._Element, ctx: Context) -> Attachment:
    kind = local(node.tag)
    if kind not in ("FileAttachment", "ItemAttachment"):
        raise EWSError("ErrorInvalidAttachmentType", f"{kind} attachments are not supported.")
    att = Attachment(kind="file" if kind == "FileAttachment" else "item", name=node.findtext(t("Name")),
                     content_type=node.findtext(t("ContentType")), content_id=node.findtext(t("ContentId")),
                     content_location=node.findtext(t("ContentLocation")),
                     is_inline=xml_bool(node.findtext(t("IsInline"))))
    if att.kind == "file":
        att.is_contact_photo = xml_bool(node.findtext(t("IsContactPhoto")))
        att.content = _content(node.findtext(t("Content")))
        att.content_type = att.content_type or "application/octet-stream"
    else:
        inner = next((c for c in node if local(c.tag) in ITEM_ELEMENTS), None)
        if inner is None:
            raise EWSError("ErrorMissingItemForCreateItemAttachment", "An item attachment needs an item.")
        item = parse_item(inner, ctx, parse_attachments)
        att.name = att.name or item.props.get("Subject")
        att.content = snapshot.dump(item)
    att.size = len(att.content)
    return att


def _content(text: str | None) -> bytes:
    if text is None:
        raise EWSError("ErrorRequiredPropertyMissing", "A file attachment needs its Content.")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EWSError("ErrorInvalidRequest", "Attachment Content is not valid base64.") from exc


def attachment_shape(node: etree._Element | None) -> Shape:
    """An AttachmentShape: how an item attachment's item is returned (all its properties unless
    the caller narrows the body type or adds MIME and extended properties)."""
    shape_el = etree.Element(t("ItemShape"))
    sub(shape_el, t("BaseShape"), "AllProperties")
    for child in node if node is not None else ():
        shape_el.append(deepcopy(child))
    return Shape.parse(shape_el)


class AttachmentOperation(Operation):
    """What the attachment operations share: reading an AttachmentId."""

    def attachment_from(self, id_el: etree._Element, need: Access) -> tuple[Mailbox, int, int]:
        """The mailbox, item row and attachment row an AttachmentId names, its item checked for
        ``need``. An attachment that is gone is ErrorItemNotFound, as on Exchange (the schema has
        no attachment-specific code)."""
        text = id_el.get("Id") or ""
        mailbox, item_row = self.item_row(text, need, ids.KIND_ATTACHMENT)
        return mailbox, item_row, ids.decode(text).attachment_id


def root_item_ids(mailbox: Mailbox, item: Item) -> dict[str, str]:
    """RootItemId and RootItemChangeKey: the parent item after the change."""
    found = item_id_attrs(mailbox, item)
    return {"RootItemId": found["Id"], "RootItemChangeKey": found["ChangeKey"]}


# -- responses ----------------------------------------------------------------------------------
def element_name(att: Attachment) -> str:
    return "FileAttachment" if att.kind == "file" else "ItemAttachment"


def attachment_id(mailbox: Mailbox, item: Item, att: Attachment) -> str:
    return ids.attachment_id(mailbox.guid, item.id, att.id or 0)


def render(parent: etree._Element, att: Attachment, att_id: str | None) -> etree._Element:
    """An attachment's element without its content, as GetItem lists it."""
    node = sub(parent, t(element_name(att)))
    if att_id is not None:
        sub(node, t("AttachmentId"), Id=att_id)
    for name, value in (("Name", att.name), ("ContentType", att.content_type), ("ContentId", att.content_id),
                        ("ContentLocation", att.content_location)):
        if value is not None:
            sub(node, t(name), value)
    sub(node, t("Size"), str(att.size or len(att.content)))
    if att.last_modified:
        sub(node, t("LastModifiedTime"), att.last_modified)
    sub(node, t("IsInline"), bool_text(att.is_inline))
    if att.kind == "file":
        sub(node, t("IsContactPhoto"), bool_text(att.is_contact_photo))
    return node


def render_full(parent: etree._Element, att: Attachment, att_id: str | None, mailbox: Mailbox, shape: Shape,
                ctx: Context) -> None:
    """An attachment with its content (GetAttachment): the file's bytes, or the attached item in
    ``shape``. Attachments of an attached item have no id of their own, so they come in full too."""
    node = render(parent, att, att_id)
    if att.kind == "file":
        sub(node, t("Content"), base64.b64encode(att.content).decode("ascii"))
        return
    item = snapshot.load(att.content)
    want_mime = shape.include_mime or "MimeContent" in shape.fields
    raw = (item.mime or mime.build_message(item.props, item.body, item.attachments)) if want_mime else None
    element = render_item(node, mailbox, _as_item(mailbox, item), shape, ctx, mime=raw)
    for name in _NOT_ATTACHED:
        for found in element.findall(t(name)):
            element.remove(found)
    holder = element.find(t("Attachments"))
    if holder is not None:
        holder.clear()
        for inner in item.attachments:
            render_full(holder, inner, None, mailbox, shape, ctx)


def _as_item(mailbox: Mailbox, new: NewItem) -> Item:
    props = dict(new.props, HasAttachments=any(not a.is_inline for a in new.attachments))
    return Item(id=0, mailbox_id=mailbox.id, folder_id=0, change_number=0, props=props, body=new.body,
                extended=new.extended, attachments=new.attachments)


def render_list(parent: etree._Element, mailbox: Mailbox, item: Item) -> None:
    for att in item.attachments:
        render(parent, att, attachment_id(mailbox, item, att))
