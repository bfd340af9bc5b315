"""Delivery status notifications (RFC 3464): a multipart/report with a human-readable part, the
message/delivery-status part (one block per recipient) and the original message (RET=FULL) or
its headers (RET=HDRS, the default). DSNs are submitted through the queue from the null sender
<>; a message from <> never gets one (RFC 3461 section 6.2), nor a recipient with NOTIFY=NEVER.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage, Message

from .headers import read_headers
from .queue import NewMessage, QueuedMessage, now

# Action -> (NOTIFY keyword that asks for it, Subject prefix, item class in the mailbox).
_KINDS = {
    "failed": ("FAILURE", "Undeliverable", "REPORT.IPM.Note.NDR"),
    "delayed": ("DELAY", "Delivery delayed", "REPORT.IPM.Note.Delayed"),
    "delivered": ("SUCCESS", "Delivered", "REPORT.IPM.Note.DR"),
    "relayed": ("SUCCESS", "Relayed", "REPORT.IPM.Note.Relayed"),
    "expanded": ("SUCCESS", "Expanded", "REPORT.IPM.Note.DR"),
}
_TEXT = {
    "failed": "Delivery has failed to these recipients:",
    "delayed": "Delivery to these recipients has been delayed; the server will keep trying:",
    "delivered": "Your message has been delivered to these recipients:",
    "relayed": "Your message has been relayed to these recipients; the destination may not send a further "
               "notification:",
    "expanded": "Your message has been delivered to the members of these groups:",
}


@dataclass(frozen=True)
class DsnRecipient:
    address: str  # Final-Recipient
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # RFC 3463, e.g. 5.1.1
    diagnostic: str = ""  # the SMTP reply or our diagnosis, e.g. "550 5.1.1 User unknown"
    orcpt: str | None = None  # ORCPT as given ("rfc822;addr")
    remote_mta: str = ""


def enhanced(reply: str) -> str:
    """The RFC 3463 code in an SMTP reply ("550 5.1.1 User unknown" -> "5.1.1")."""
    parts = reply.split()
    return parts[1] if len(parts) > 1 and parts[1][:1] in "245" and parts[1].count(".") == 2 else "5.0.0"


def wanted(notify: tuple[str, ...], action: str) -> bool:
    """Whether a recipient's NOTIFY asks for a DSN with ``action``; without NOTIFY, failures and
    delays are reported (as Exchange does), successes are not."""
    if "NEVER" in notify:
        return False
    keyword = _KINDS[action][0]
    return keyword in notify if notify else keyword in ("FAILURE", "DELAY")


def item_class(raw: bytes) -> str:
    """The item class a DSN gets in a mailbox (REPORT.IPM.Note.NDR, ...), from its first action."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload():
                action = str(block.get("Action", "")).strip().lower()
                if action in _KINDS:
                    return _KINDS[action][2]
    return "IPM.Note"


def build(*, action: str, reporting_mta: str, to: str, original: bytes, recipients: list[DsnRecipient],
          envid: str | None, ret: str | None, arrival: float, retry_until: float | None = None) -> bytes:
    """The DSN for ``recipients`` (all with ``action``) of ``original``, addressed to ``to``."""
    headers = read_headers(original)
    domain = to.rpartition("@")[2] or reporting_mta
    report = EmailMessage(policy=email.policy.SMTP)
    report["From"] = f"Mail Delivery System <postmaster@{domain}>"
    report["To"] = to
    report["Subject"] = f"{_KINDS[action][1]}: {headers.subject}"
    report["Date"] = email.utils.formatdate(localtime=False)
    report["Message-ID"] = email.utils.make_msgid(domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"
    if headers.message_id:
        report["In-Reply-To"] = headers.message_id
        report["References"] = headers.message_id
    report.set_content(_human(action, recipients))
    report.make_mixed()
    report.attach(_status_part(reporting_mta, recipients, envid, arrival, retry_until))
    if (ret or "").upper() == "FULL":
        report.attach(_original_part(original))
    else:
        head = original.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        report.add_attachment(head + b"\r\n", maintype="text", subtype="rfc822-headers", disposition="inline")
    report.replace_header("Content-Type", "multipart/report")
    report.set_param("report-type", "delivery-status")
    report.set_boundary(email.utils.make_msgid().strip("<>").replace("@", "."))
    return report.as_bytes()


def queued(*, action: str, hostname: str, message: QueuedMessage, body: bytes, recipients: list[DsnRecipient],
           expiration: float) -> NewMessage:
    """The DSN about ``message`` as a new queue entry from <> to its sender."""
    raw = build(action=action, reporting_mta=hostname, to=message.mail_from, original=body, envid=message.envid,
                ret=message.ret, arrival=message.received, retry_until=message.expires, recipients=recipients)
    headers = read_headers(raw)
    at = now()
    return NewMessage(internet_id=headers.message_id, mail_from="", subject=headers.subject,
                      source="DSN", connector="", client_ip="", client_hostname="", submitter=None, envid=None,
                      ret=None, received=at, expires=at + expiration, body=raw,
                      recipients=((message.mail_from, (), None),))


def _human(action: str, recipients: list[DsnRecipient]) -> str:
    lines = [_TEXT[action], ""]
    lines += [f"  {r.address}" + (f": {r.diagnostic}" if r.diagnostic else "") for r in recipients]
    return "\n".join(lines) + "\n"


def _date(timestamp: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(timestamp, UTC))


def _status_part(reporting_mta: str, recipients: list[DsnRecipient], envid: str | None, arrival: float,
                 retry_until: float | None) -> Message:
    per_message = f"Reporting-MTA: dns; {reporting_mta}\n"
    if envid:
        per_message += f"Original-Envelope-Id: {envid}\n"
    per_message += f"Arrival-Date: {_date(arrival)}\n\n"
    blocks = [email.message_from_string(per_message)]
    for r in recipients:
        text = ""
        if r.orcpt:
            kind, _, value = r.orcpt.partition(";")
            text += f"Original-Recipient: {kind.strip() or 'rfc822'}; {value.strip() or r.orcpt}\n"
        text += f"Final-Recipient: rfc822; {r.address}\nAction: {r.action}\nStatus: {r.status}\n"
        if r.remote_mta:
            text += f"Remote-MTA: dns; {r.remote_mta}\n"
        if r.diagnostic:
            text += f"Diagnostic-Code: smtp; {r.diagnostic}\n"
        text += f"Last-Attempt-Date: {email.utils.formatdate(localtime=False)}\n"
        if retry_until is not None and r.action == "delayed":
            text += f"Will-Retry-Until: {_date(retry_until)}\n"
        blocks.append(email.message_from_string(text + "\n"))
    part = Message()
    part["Content-Type"] = "message/delivery-status"
    part.set_payload(blocks)  # the generator writes the blocks as header groups (RFC 3464 section 2)
    return part


def _original_part(original: bytes) -> Message:
    part = Message()
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "inline"
    part.set_payload([email.message_from_bytes(original, policy=email.policy.compat32)])
    return part
