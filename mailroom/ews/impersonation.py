"""ExchangeImpersonation: a service account holding the ApplicationImpersonation role acts as a
mailbox owner, with the owner's full rights. The SOAP header names the owner (ConnectingSID); the
grant is checked on every request, and every impersonated access is audited."""

from __future__ import annotations

from lxml import etree

from mailroom.access import audit
from mailroom.access.identity import IMPERSONATION, Identity
from mailroom.store import Store
from mailroom.store.model import AuditRecord, Mailbox, utcnow

from .errors import SOAPFault
from .xml import local, t

_NAMES = ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName", "SID")


def impersonated(store: Store, authenticated: Identity, header: etree._Element, operation: str,
                 client_ip: str = "") -> Identity:
    """The Identity acting as the mailbox the ExchangeImpersonation ``header`` names, or the
    SOAPFault Exchange answers with: ErrorImpersonationDenied without any grant (checked first, so
    it says nothing about which addresses exist), ErrorNonExistentMailbox for an unknown mailbox,
    ErrorImpersonateUserDenied for one outside every scope of the caller's grants."""
    caller = authenticated.caller
    kind, value = _connecting_sid(header)
    directory = store.directory

    def refuse(code: str, message: str) -> SOAPFault:
        audit.write(store, [AuditRecord(time=utcnow(), caller=caller.address, mailbox=value.lower(),
                                        right=IMPERSONATION, operation=operation, result=code, client_ip=client_ip)])
        return SOAPFault(code, message)

    if not directory.impersonation_grants(caller):
        raise refuse("ErrorImpersonationDenied",
                     "The account does not have permission to impersonate the requested user.")
    target: Mailbox | None = directory.mailbox_by_sid(value) if kind == "SID" else directory.mailbox_by_address(value)
    if target is None:
        raise refuse("ErrorNonExistentMailbox", f"No mailbox is associated with {value}.")
    if not directory.impersonation_allowed(caller, target):
        raise refuse("ErrorImpersonateUserDenied", f"The account does not have permission to impersonate {value}.")
    return Identity(caller=caller, mailbox=target, right=IMPERSONATION)


def _connecting_sid(header: etree._Element) -> tuple[str, str]:
    """(PrimarySmtpAddress | SmtpAddress | PrincipalName | SID, its text). A user principal name
    is the mailbox address here; a SID is the one ``directory.mailbox_sid`` gives the mailbox."""
    sid = header.find(t("ConnectingSID"))
    named = sid[0] if sid is not None and len(sid) else None
    if named is None or local(named.tag) not in _NAMES or not (named.text or "").strip():
        raise SOAPFault("ErrorInvalidExchangeImpersonationHeaderData",
                        "ExchangeImpersonation needs a ConnectingSID with a PrimarySmtpAddress, SmtpAddress, "
                        "PrincipalName or SID.")
    return local(named.tag), (named.text or "").strip()
