"""Transport agents: the supported extension point of the transport pipeline.

An agent is a class (registered under the ``mailroom.transport_agents`` entry-point group, or
named by ``module:Class`` in the configuration) that overrides the events it cares about:

receive events (an SMTP session; ``reject`` answers with an SMTP reply):
    ``on_connect(session)``, ``on_mail_from(session, address)``, ``on_rcpt_to(session, address)``,
    ``on_end_of_data(session, item)``
routing events (a queued message):
    ``on_submitted(item)``, ``on_resolved(item)``, ``on_routed(item)``
delivery event (one recipient, just before its delivery):
    ``on_deliver(item, recipient)``

Agents run in ascending ``priority``. An agent may raise ``Reject`` (refuse, with an SMTP
reply) or ``Quarantine`` (hold the message for an administrator), change headers and body and
add, remove or redirect recipients through the ``MailItem``. An agent that raises anything
else is logged and skipped: the message goes on as if that agent were not there.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, ClassVar

from mailroom.transport.envelope import Recipient

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mailroom.transport_agents"
EVENTS = ("on_connect", "on_mail_from", "on_rcpt_to", "on_end_of_data", "on_submitted", "on_resolved",
          "on_routed", "on_deliver")


class Reject(Exception):
    """Refuse the message (or command) with ``reply``, e.g. ``550 5.7.1 Message refused by policy``."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Quarantine(Exception):
    """Hold the message, suspended, for an administrator to look at; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SessionInfo:
    """What a receive agent may know about the SMTP session."""

    listener: str
    client_ip: str
    client_hostname: str = ""
    authenticated_as: str | None = None


@dataclass
class MailItem:
    """A message as agents see it: the envelope, and the content parsed on first use. Changes are
    written back to ``raw`` by ``content()``."""

    mail_from: str
    recipients: list[Recipient]
    raw: bytes
    internal_id: str = ""
    _message: EmailMessage | None = field(default=None, repr=False)

    @property
    def message(self) -> EmailMessage:
        """The parsed message; agents change headers and body here."""
        if self._message is None:
            self._message = email.message_from_bytes(self.raw, policy=email.policy.SMTP)  # type: ignore[assignment]
        return self._message  # type: ignore[return-value]

    def content(self) -> bytes:
        """The message bytes, including any change made through ``message``."""
        if self._message is not None:
            self.raw = self._message.as_bytes()
            self._message = None
        return self.raw

    def add_recipient(self, address: str) -> None:
        if all(r.address.lower() != address.lower() for r in self.recipients):
            self.recipients.append(Recipient(address))

    def remove_recipient(self, address: str) -> None:
        self.recipients = [r for r in self.recipients if r.address.lower() != address.lower()]

    def redirect(self, address: str, to: str) -> None:
        """Deliver what was for ``address`` to ``to`` instead."""
        self.remove_recipient(address)
        self.add_recipient(to)


class TransportAgent:
    """Base class: override the events to handle. ``settings`` come from the configuration's
    ``agents.<name>`` table."""

    name: ClassVar[str] = "agent"
    priority: ClassVar[int] = 100

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def on_connect(self, session: SessionInfo) -> None: ...
    def on_mail_from(self, session: SessionInfo, address: str) -> None: ...
    def on_rcpt_to(self, session: SessionInfo, address: str) -> None: ...
    def on_end_of_data(self, session: SessionInfo, item: MailItem) -> None: ...
    def on_submitted(self, item: MailItem) -> None: ...
    def on_resolved(self, item: MailItem) -> None: ...
    def on_routed(self, item: MailItem) -> None: ...
    def on_deliver(self, item: MailItem, recipient: Recipient) -> None: ...


class AgentLoadError(Exception):
    """An agent named in the configuration could not be loaded; the server does not start."""


def load_agent_class(name: str) -> type[TransportAgent]:
    """An entry-point name (``disclaimer``) or ``package.module:Class``."""
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            found = getattr(import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise AgentLoadError(f"transport agent {name!r}: {exc}") from exc
    else:
        matches = entry_points(group=ENTRY_POINT_GROUP, name=name)
        if not matches:
            known = ", ".join(sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))) or "none"
            raise AgentLoadError(f"no transport agent named {name!r} (installed: {known})")
        found = next(iter(matches)).load()
    if not (isinstance(found, type) and issubclass(found, TransportAgent)):
        raise AgentLoadError(f"transport agent {name!r} is not a TransportAgent subclass")
    return found


class Agents:
    """The configured agents in priority order, and the one place events are fired from."""

    def __init__(self, agents: Iterable[TransportAgent],
                 on_error: Callable[[TransportAgent, str, Exception], None] | None = None) -> None:
        self.agents = sorted(agents, key=lambda a: a.priority)
        self.on_error = on_error

    @classmethod
    def load(cls, names: Iterable[str], settings: dict[str, dict[str, Any]],
             on_error: Callable[[TransportAgent, str, Exception], None] | None = None) -> Agents:
        agents = []
        for name in names:
            agent_class = load_agent_class(name)
            try:
                agents.append(agent_class(settings.get(name, settings.get(agent_class.name, {}))))
            except Exception as exc:  # a bad setting stops start-up with a clear message
                raise AgentLoadError(f"transport agent {name!r} failed to start: {exc}") from exc
        return cls(agents, on_error)

    def fire(self, event: str, *args: Any) -> None:
        """Run ``event`` on every agent that handles it. Reject and Quarantine propagate; any
        other exception is logged and that agent skipped."""
        for agent in self.agents:
            handler = getattr(type(agent), event)
            if handler is getattr(TransportAgent, event):
                continue
            try:
                handler(agent, *args)
            except (Reject, Quarantine):
                raise
            except Exception as exc:
                log.exception("transport agent %s failed in %s; skipped", agent.name, event)
                if self.on_error is not None:
                    self.on_error(agent, event, exc)

    def __bool__(self) -> bool:
        return bool(self.agents)
