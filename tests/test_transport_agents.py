"""Transport agents: loading, ordering, failure isolation and the two shipped agents. (Their
place in the running pipeline is tested end to end with the transport.)"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest

from mailroom.server import config as configuration
from mailroom.transport.agents import (
    AgentLoadError,
    Agents,
    MailItem,
    Quarantine,
    Reject,
    TransportAgent,
    load_agent_class,
)
from mailroom.transport.agents.disclaimer import DisclaimerAgent
from mailroom.transport.agents.header_stamp import HeaderStampAgent
from mailroom.transport.envelope import Recipient

calls: list[str] = []


class First(TransportAgent):
    name: ClassVar[str] = "first"
    priority: ClassVar[int] = 1

    def on_submitted(self, item: MailItem) -> None:
        calls.append("first")


class Broken(TransportAgent):
    name: ClassVar[str] = "broken"
    priority: ClassVar[int] = 2

    def on_submitted(self, item: MailItem) -> None:
        raise RuntimeError("agent bug")


class Refuser(TransportAgent):
    name: ClassVar[str] = "refuser"
    priority: ClassVar[int] = 3

    def on_submitted(self, item: MailItem) -> None:
        calls.append("refuser")
        if item.mail_from.startswith("spam"):
            raise Reject("550 5.7.1 Refused by policy")


def _item(message: EmailMessage, mail_from: str = "alice@example.com") -> MailItem:
    return MailItem(mail_from=mail_from, recipients=[Recipient("bob@example.net")], raw=message.as_bytes(),
                    internal_id="42")


def _plain(body: str = "Hello.\n") -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = "alice@example.com"
    msg["To"] = "bob@example.net"
    msg["Subject"] = "Hi"
    msg.set_content(body)
    return msg


def _parsed(item: MailItem) -> EmailMessage:
    return email.message_from_bytes(item.content(), policy=email.policy.default)  # type: ignore[return-value]


def test_agents_run_in_priority_order_and_a_failing_one_is_skipped() -> None:
    calls.clear()
    failures: list[str] = []
    agents = Agents([Refuser({}), Broken({}), First({})],
                    on_error=lambda agent, event, exc, item: failures.append(agent.name))
    agents.fire("on_submitted", _item(_plain()))
    assert calls == ["first", "refuser"]
    assert failures == ["broken"]
    with pytest.raises(Reject) as refused:
        agents.fire("on_submitted", _item(_plain(), mail_from="spam@example.org"))
    assert refused.value.reply.startswith("550 5.7.1")


def test_agents_load_by_entry_point_or_dotted_path_and_bad_names_stop_start_up() -> None:
    assert load_agent_class("disclaimer") is DisclaimerAgent
    assert load_agent_class("header-stamp") is HeaderStampAgent
    assert load_agent_class(f"{__name__}:First") is First
    with pytest.raises(AgentLoadError, match="no transport agent named"):
        load_agent_class("no-such-agent")
    with pytest.raises(AgentLoadError, match="not a TransportAgent"):
        load_agent_class(f"{__name__}:_plain")
    with pytest.raises(AgentLoadError, match="failed to start"):
        Agents.load(["disclaimer"], {})  # no text configured


def test_agent_settings_come_from_their_own_config_tables(tmp_path: Path) -> None:
    file = tmp_path / "mailroom.toml"
    file.write_text('[agents]\nenabled = ["header-stamp"]\n[agents.header-stamp.headers]\nX-Org = "Example"\n')
    config = configuration.load(file)
    assert config["agents.enabled"] == ["header-stamp"]
    agents = Agents.load(config["agents.enabled"], config.agent_settings)
    item = _item(_plain())
    agents.fire("on_submitted", item)
    assert _parsed(item)["X-Org"] == "Example"


def test_disclaimer_is_appended_to_every_body_part_once() -> None:
    msg = _plain("Plain body.\n")
    msg.add_alternative("<html><body><p>HTML body.</p></body></html>", subtype="html")
    msg.add_attachment(b"attached text", maintype="text", subtype="plain", filename="notes.txt")
    agent = DisclaimerAgent({"text": "Confidential."})
    item = _item(msg)
    agent.on_submitted(item)
    agent.on_submitted(item)  # a second pass (e.g. a relay through another mailroom) adds nothing
    parsed = _parsed(item)
    body = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert body is not None and body.get_content().count("Confidential.") == 1
    assert html is not None and html.get_content().count("<p>Confidential.</p></body>") == 1
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content() == "attached text"


def test_disclaimer_only_for_the_configured_sender_domains() -> None:
    agent = DisclaimerAgent({"text": "Confidential.", "sender_domains": ["example.com"]})
    outside = _item(_plain(), mail_from="carol@elsewhere.org")
    agent.on_submitted(outside)
    assert "Confidential." not in _parsed(outside).get_content()
    inside = _item(_plain())
    agent.on_submitted(inside)
    assert "Confidential." in _parsed(inside).get_content()


def test_header_stamp_replaces_copies_from_outside() -> None:
    msg = _plain()
    msg["X-Scanned"] = "forged"
    item = _item(msg)
    HeaderStampAgent({"headers": {"X-Scanned": "mailroom {internal_id}"}}).on_submitted(item)
    assert _parsed(item).get_all("X-Scanned") == ["mailroom 42"]


def test_recipients_can_be_added_removed_and_redirected() -> None:
    item = _item(_plain())
    item.add_recipient("carol@example.net")
    item.add_recipient("CAROL@example.net")
    item.redirect("bob@example.net", "dave@example.net")
    assert [r.address for r in item.recipients] == ["carol@example.net", "dave@example.net"]


class LateHold(TransportAgent):
    name: ClassVar[str] = "late-hold"

    def on_routed(self, item: MailItem) -> None:
        item.message["X-Late"] = "yes"
        raise Quarantine("too late")


def test_quarantine_after_the_message_is_stored_is_an_agent_failure_and_undone() -> None:
    failures: list[str] = []
    agents = Agents([LateHold({})], on_error=lambda agent, event, exc, item: failures.append(str(exc)))
    item = _item(_plain())
    agents.fire("on_routed", item)
    assert failures == ["cannot quarantine in on_routed (too late): only on_end_of_data and on_submitted may"]
    assert _parsed(item)["X-Late"] is None
    with pytest.raises(Quarantine) as held:
        Agents([Holder({})]).fire("on_submitted", item)
    assert held.value.description == "Quarantined by transport agent holder: suspicious"


class Holder(TransportAgent):
    name: ClassVar[str] = "holder"

    def on_submitted(self, item: MailItem) -> None:
        raise Quarantine("suspicious")
