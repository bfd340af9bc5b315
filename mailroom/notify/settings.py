"""The notification settings of a server (the ``notifications.*`` options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailroom.access.identity import Identity


@dataclass(frozen=True)
class Settings:
    max_subscriptions_per_caller: int = 5000  # EWSMaxSubscriptions, as Exchange 2013's default policy
    push_allow: tuple[str, ...] = ()  # hosts and networks push may reach even where the defaults refuse
    push_deny: tuple[str, ...] = ()  # hosts and networks push never reaches
    push_retry_seconds: float = 30.0  # the first wait after a failed push; it doubles each time
    push_timeout_seconds: float = 30.0  # for one push: connecting, sending and reading the answer
    push_max_answer_bytes: int = 64 * 1024  # a longer SendNotificationResult is a failed push

    @classmethod
    def from_config(cls, config: Any) -> Settings:  # noqa: ANN401 - mailroom.server.config.Config
        return cls(max_subscriptions_per_caller=config["notifications.max_subscriptions_per_caller"],
                   push_allow=tuple(config["notifications.push_allow"]),
                   push_deny=tuple(config["notifications.push_deny"]),
                   push_retry_seconds=float(config["notifications.push_retry_seconds"]),
                   push_timeout_seconds=float(config["notifications.push_timeout_seconds"]),
                   push_max_answer_bytes=config["notifications.push_max_answer_bytes"])


def subscription_limit(settings: Settings, identity: Identity) -> int:
    """How many live subscriptions ``identity``'s caller may hold (EWSMaxSubscriptions). One place,
    so a throttling policy per caller can decide it later."""
    del identity  # every caller gets the server's setting for now
    return settings.max_subscriptions_per_caller
