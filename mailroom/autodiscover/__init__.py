"""Autodiscover: from an e-mail address, tell a client where this server's EWS endpoint is.

Two protocols answer it: POX (``pox.py``, the Outlook XML of [MS-OXDSCLI]) and SOAP (``soap.py``,
GetUserSettings and GetDomainSettings of [MS-OXWSADISC]). Both describe a user the same way, with
``Profile``; every URL is built from the public base URL (``ews.public_url``, else the request's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from mailroom.access.identity import Identity
from mailroom.store import Store
from mailroom.store.model import Mailbox

POX_PATH = "/autodiscover/autodiscover.xml"
SOAP_PATH = "/autodiscover/autodiscover.svc"
EWS_PATH = "/EWS/Exchange.asmx"
# The legacy X.500 organisation Exchange names its objects under; Outlook only compares these DNs.
ORGANIZATION_DN = "/o=mailroom/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"


def base_url(public_url: str, request_url: str) -> str:
    """The base URL to hand out: ``ews.public_url`` (given with or without the EWS path), else the
    scheme and host the request came to."""
    url = (public_url or request_url).rstrip("/")
    return url[:-len(EWS_PATH)] if url.lower().endswith(EWS_PATH.lower()) else url


def ews_url(base_url: str) -> str:
    return f"{base_url}{EWS_PATH}"


def find_user(store: Store, identity: Identity, address: str) -> Mailbox | None:
    """The mailbox at ``address`` when the caller may open it. Another user's mailbox answers like
    an unknown address, so Autodiscover never tells who exists."""
    mailbox = store.directory.mailbox_by_address(address)
    return mailbox if mailbox is not None and identity.may_open(mailbox) else None


@dataclass(frozen=True)
class Profile:
    """What Autodiscover says about one mailbox reached through ``base_url`` (scheme://host[:port])."""

    mailbox: Mailbox
    base_url: str

    @property
    def ews_url(self) -> str:
        return ews_url(self.base_url)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @property
    def secure(self) -> bool:
        return self.base_url.lower().startswith("https:")

    @property
    def deployment_id(self) -> str:
        """Stable for one public host name: clients use it to tell deployments apart."""
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, self.host))

    @property
    def legacy_dn(self) -> str:
        return f"{ORGANIZATION_DN}/cn=Recipients/cn={self.mailbox.guid.replace('-', '')}"

    @property
    def mailbox_server(self) -> str:
        """The per-mailbox server name Exchange 2013 and later hand out (mailbox GUID @ domain)."""
        return f"{self.mailbox.guid}@{self.mailbox.address.rpartition('@')[2]}"

    @property
    def server_dn(self) -> str:
        return f"{ORGANIZATION_DN}/cn=Configuration/cn=Servers/cn={self.mailbox_server}"

    @property
    def mailbox_dn(self) -> str:
        return f"{self.server_dn}/cn=Microsoft Private MDB"
