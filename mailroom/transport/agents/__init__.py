"""Transport agents: the supported extension point of the transport pipeline.

An agent is a class (registered under the ``mailroom.transport_agents`` entry-point group, or
named by ``module:Class`` in the configuration) that overrides the events it cares about:

receive events (an SMTP session; ``Reject`` answers that command with its SMTP reply):
    ``on_connect(session)``, ``on_mail_from(session, address)``, ``on_rcpt_to(session, address)``,
    ``on_end_of_data(session, item)``
routing events (a queued message):
    ``on_submitted(item)``, ``on_resolved(item)``, ``on_routed(item)``
delivery event (one recipient, just before its delivery):
    ``on_deliver(item, recipient)``

Agents run in ascending ``priority``, in worker threads (several messages at once: an agent
must be thread-safe). Every event may change headers and body through the ``MailItem`` and may
raise ``Reject``; only ``on_end_of_data`` and ``on_submitted`` (before the message is stored) may
change recipients or raise ``Quarantine``. An agent that raises anything else, or does what its
event does not allow, is logged and skipped: its changes are undone and the message goes on as
if that agent were not there.
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
# The events before the message is stored: the only ones that may change recipients or quarantine.
BEFORE_QUEUE = ("on_end_of_data", "on_submitted")


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
        self.agent = ""  # set by Agents.fire

    @property
    def description(self) -> str:
        """What the queue shows as the suspended message's last error."""
        return f"Quarantined by transport agent {self.agent}: {self.reason}"


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
    _fixed_in: str = field(default="", repr=False)  # the event, when recipients may not change

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
        self._changeable()
        if all(r.address.lower() != address.lower() for r in self.recipients):
            self.recipients.append(Recipient(address))

    def remove_recipient(self, address: str) -> None:
        self._changeable()
        self.recipients = [r for r in self.recipients if r.address.lower() != address.lower()]

    def redirect(self, address: str, to: str) -> None:
        """Deliver what was for ``address`` to ``to`` instead."""
        self.remove_recipient(address)
        self.add_recipient(to)

    def _changeable(self) -> None:
        if self._fixed_in:
            raise AgentError(f"recipients cannot change in {self._fixed_in}: only {' and '.join(BEFORE_QUEUE)} "
                             "may add, remove or redirect them")


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


class AgentError(Exception):
    """An agent did what its event does not allow (handled as the agent failing)."""


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


ErrorCallback = Callable[[TransportAgent, str, Exception, MailItem | None], None]


class Agents:
    """The configured agents in priority order, and the one place events are fired from."""

    def __init__(self, agents: Iterable[TransportAgent], on_error: ErrorCallback | None = None) -> None:
        self.agents = sorted(agents, key=lambda a: a.priority)
        self.on_error = on_error

    @classmethod
    def load(cls, names: Iterable[str], settings: dict[str, dict[str, Any]],
             on_error: ErrorCallback | None = None) -> Agents:
        agents = []
        for name in names:
            agent_class = load_agent_class(name)
            try:
                agents.append(agent_class(settings.get(name, settings.get(agent_class.name, {}))))
            except Exception as exc:  # a bad setting stops start-up with a clear message
                raise AgentLoadError(f"transport agent {name!r} failed to start: {exc}") from exc
        return cls(agents, on_error)

    def fire(self, event: str, *args: Any) -> None:
        """Run ``event`` on every agent that handles it. Reject (and, before the message is stored,
        Quarantine) propagate; an agent that raises anything else, or changes recipients after
        the message was stored, is logged and skipped, with its changes undone."""
        item = next((a for a in args if isinstance(a, MailItem)), None)
        if item is not None:
            item._fixed_in = "" if event in BEFORE_QUEUE else event
        for agent in self.agents:
            handler = getattr(type(agent), event)
            if handler is getattr(TransportAgent, event):
                continue
            saved = (item.content(), list(item.recipients)) if item is not None else None
            try:
                handler(agent, *args)
                if item is not None and saved is not None and item._fixed_in and item.recipients != saved[1]:
                    raise AgentError(f"recipients cannot change in {event}")
            except Reject:
                raise
            except Quarantine as held:
                if event in BEFORE_QUEUE:
                    held.agent = agent.name
                    raise
                self._failed(agent, event, AgentError(f"cannot quarantine in {event} ({held.reason}): only "
                                                      f"{' and '.join(BEFORE_QUEUE)} may"), item, saved)
            except Exception as exc:
                self._failed(agent, event, exc, item, saved)

    def _failed(self, agent: TransportAgent, event: str, exc: Exception, item: MailItem | None,
                saved: tuple[bytes, list[Recipient]] | None) -> None:
        log.error("transport agent %s failed in %s; skipped: %s", agent.name, event, exc, exc_info=exc)
        if item is not None and saved is not None:
            item.raw, item.recipients, item._message = saved[0], saved[1], None
        if self.on_error is not None:
            self.on_error(agent, event, exc, item)

    def __bool__(self) -> bool:
        return bool(self.agents)
