"""The notification settings of a server (the ``notifications.*`` options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Settings:
    push_allow: tuple[str, ...] = ()  # hosts and networks push may reach even where the defaults refuse
    push_deny: tuple[str, ...] = ()  # hosts and networks push never reaches
    push_retry_seconds: float = 30.0  # the first wait after a failed push; it doubles each time
    push_timeout_seconds: float = 30.0  # for one push: connecting, sending and reading the answer
    push_max_answer_bytes: int = 64 * 1024  # a longer SendNotificationResult is a failed push

    @classmethod
    def from_config(cls, config: Any) -> Settings:  # noqa: ANN401 - mailroom.server.config.Config
        return cls(push_allow=tuple(config["notifications.push_allow"]),
                   push_deny=tuple(config["notifications.push_deny"]),
                   push_retry_seconds=float(config["notifications.push_retry_seconds"]),
                   push_timeout_seconds=float(config["notifications.push_timeout_seconds"]),
                   push_max_answer_bytes=config["notifications.push_max_answer_bytes"])

