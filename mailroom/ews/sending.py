"""Sending from EWS (CreateItem SendOnly/SendAndSaveCopy, SendItem): stamp the sender, build the
MIME, submit it to the transport (the queue), keep the copy in Sent Items."""

from __future__ import annotations

import email.policy
import uuid
from collections.abc import Callable
from email.parser import BytesParser
from typing import TYPE_CHECKING, Any

from lxml import etree

from mailroom.access.permissions import Access
from mailroom.content import mime, recipients
from mailroom.content.recipients import Address
from mailroom.store.model import Attachment, Body, Folder, Item, ItemChanges, Mailbox, NewItem, utcnow
from mailroom.transport.envelope import Recipient, Submission, SubmissionRefused

from .context import Context
from .errors import EWSError

if TYPE_CHECKING:
    from .service import Operation


def _stamp(ctx: Context, props: dict) -> None:
    """From and Sender: the caller's own address, or, when From names a mailbox that made the
    caller its delegate, that mailbox in From and the caller in Sender ("on behalf of"), as
    Exchange grants send-on-behalf with AddDelegate. Any other From is ErrorSendAsDenied."""
    me = ctx.mailbox
    named = recipients.parse(props.get("From"))
    if named and named[0].email and named[0].email.lower() not in (me.address, *me.aliases):
        owner = ctx.store.directory.mailbox_by_address(named[0].email)
        if owner is None or not ctx.store.permissions.is_delegate(owner, me):
            raise EWSError("ErrorSendAsDenied", f"{me.address} may not send on behalf of {named[0].email}.")
        props["From"] = recipients.build("From", [Address(owner.display_name, owner.address)], single=True)
    props.setdefault("From", recipients.build("From", [Address(me.display_name, me.address)], single=True))
    props["Sender"] = recipients.build("Sender", [Address(me.display_name, me.address)], single=True)
    props.setdefault("InternetMessageId", f"<{uuid.uuid4().hex}@{me.address.split('@', 1)[1]}>")
    props.update(DateTimeSent=utcnow(), IsDraft=False, IsRead=True)


def _rcpts(props: dict) -> list[str]:
    found = []
    for element in ("ToRecipients", "CcRecipients", "BccRecipients"):
        found += [a.email for a in recipients.parse(props.get(element)) if a.email]
    if not found:
        raise EWSError("ErrorInvalidRecipients", "At least one recipient is required.")
    return found


def _without_bcc(raw: bytes) -> bytes:
    """Bcc recipients are envelope-only: the MIME that is sent carries no Bcc header."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or b"bcc:" not in head.lower():
        return raw
    message = BytesParser(policy=email.policy.SMTP).parsebytes(raw)
    del message["Bcc"]
    return message.as_bytes()


def _deliver(ctx: Context, raw: bytes, rcpts: list[str]) -> None:
    """Submit to the transport as the caller's mailbox (STOREDRIVER, as Exchange's mailbox
    submission); it delivers, routes, and reports failures to the sender with DSNs."""
    if ctx.submit is None:
        raise EWSError("ErrorMessageSubmissionBlocked", "Sending is not available: the transport is not running.")
    submission = Submission(mail_from=ctx.mailbox.address, recipients=tuple(Recipient(a) for a in dict.fromkeys(rcpts)),
                            raw=_without_bcc(raw), source="STOREDRIVER", connector="ews",
                            submitter=ctx.identity.mailbox.address)
    try:
        ctx.submit(submission)
    except SubmissionRefused as exc:
        raise EWSError("ErrorMessageSubmissionBlocked", f"The transport refused the message: {exc.reply}") from exc


Composer = Callable[[dict[str, Any], Body | None, list[Attachment]], bytes]


def send_new(ctx: Context, new: NewItem, saved: tuple[Mailbox, Folder] | None,
             compose: Composer = mime.build_message) -> Item | None:
    """Send a message built in this request (its MIME made by ``compose``, once stamped);
    returns the saved copy, if one was kept."""
    _stamp(ctx, new.props)
    rcpts = _rcpts(new.props)
    raw = compose(new.props, new.body, new.attachments) if new.mime is None else new.mime
    _deliver(ctx, raw, rcpts)
    if saved is None:
        return None
    mailbox, folder = saved
    return ctx.store.items.create(mailbox, folder.id, NewItem(props=new.props, body=new.body, mime=raw,
                                                              extended=new.extended, attachments=new.attachments))


def saved_copy_folder(op: Operation, saved_el: etree._Element | None, mailbox: Mailbox) -> Folder:
    """Where the sent copy of ``mailbox``'s message goes: SavedItemFolderId if given, else Sent Items."""
    if saved_el is None or not len(saved_el):
        return op.ctx.store.folders.distinguished(mailbox, "sentitems")
    try:
        target, folder = op.folder_from(saved_el[0], Access.CREATE)
    except EWSError as exc:
        if exc.code == "ErrorFolderNotFound":
            raise EWSError("ErrorSavedItemFolderNotFound", "The folder for the sent copy was not found.") from exc
        raise
    if target.id != mailbox.id:
        raise EWSError("ErrorInvalidOperation", "The sent copy can only be saved in the sender's mailbox.")
    return folder


def send_existing(ctx: Context, mailbox: Mailbox, item: Item, saved: Folder | None) -> None:
    """Send a saved draft, then move it to ``saved`` (Sent Items) or delete it."""
    props = dict(item.props)
    _stamp(ctx, props)
    rcpts = _rcpts(props)
    raw = mime.build_message(props, item.body, ctx.store.items.attachments(mailbox, item.id))
    _deliver(ctx, raw, rcpts)
    if saved is None:
        ctx.store.items.delete(mailbox, item.id)
        return
    changed = {k: props[k] for k in ("From", "Sender", "InternetMessageId", "DateTimeSent", "IsDraft", "IsRead")}
    ctx.store.items.update(mailbox, item.id, ItemChanges(set_props=changed))
    ctx.store.items.set_mime(mailbox, item.id, raw)
    if saved.id != item.folder_id:
        ctx.store.items.move(mailbox, item.id, saved.id)
