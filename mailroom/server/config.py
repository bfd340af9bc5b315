"""One configuration schema for the TOML file, the command-line flags and their defaults.

Values are layered: built-in defaults, then the config file, then flags. Each value remembers
where it came from so an error can name the file and key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Option:
    key: str  # dotted key in the TOML file, e.g. "ews.http_listen"
    default: Any
    help: str


OPTIONS: tuple[Option, ...] = (
    Option("data_dir", "data", "Folder for the embedded database, TLS certificate and logs."),
    Option("database_url", "", "SQLAlchemy URL of the store (sqlite:///... or postgresql+psycopg://...); "
                               "empty means SQLite in the data folder."),
    Option("ews.http_listen", "127.0.0.1:8080", "HOST:PORT for EWS over HTTP; empty disables it."),
    Option("ews.https_listen", "127.0.0.1:8443", "HOST:PORT for EWS over HTTPS; empty disables it."),
    Option("ews.public_url", "", "The public base URL clients reach the server at (e.g. https://mail.example.com), "
                                 "handed out by Autodiscover; empty means the scheme and host each request came to."),
    Option("ews.workers", 8, "Worker threads (and database connections) serving EWS requests."),
    Option("ews.max_request_bytes", 64 * 1024 * 1024, "Largest EWS request body accepted (bytes); larger ones "
                                                      "get an ErrorRequestStreamTooBig fault."),
    Option("transport.inbound_listen", "127.0.0.1:2525", "HOST:PORT for inbound SMTP (the port-25 role: mail for "
                                                        "accepted domains, no AUTH, no relay); empty disables it."),
    Option("transport.max_recipients", 200, "Most recipients accepted per SMTP message; more get 452 4.5.3."),
    Option("transport.max_message_bytes", 36 * 1024 * 1024, "Largest SMTP message accepted (bytes); larger ones "
                                                            "get 552 5.3.4."),
    Option("transport.submission_listen", "127.0.0.1:5870", "HOST:PORT for SMTP submission (the port-587 role: "
                                                           "STARTTLS, then AUTH PLAIN/LOGIN, then any recipient); "
                                                           "empty disables it."),
    Option("transport.pickup_dir", "Pickup", "Pickup directory: .eml files dropped here are submitted (relative to the "
                                             "data folder); empty disables it."),
    Option("transport.pickup_interval_seconds", 5, "How often the pickup directory is polled."),
    Option("transport.pickup_max_messages_per_minute", 100, "Most pickup files submitted per minute."),
    Option("transport.pickup_max_header_bytes", 64 * 1024, "Largest header block of a pickup file (bytes)."),
    Option("transport.pickup_max_recipients", 100, "Most To/Cc/Bcc recipients of a pickup file."),
    Option("backpressure.enabled", True, "Meter resources and refuse new mail under pressure (Exchange's back "
                                         "pressure)."),
    Option("backpressure.interval_seconds", 2, "How often the back-pressure resources are metered."),
    Option("backpressure.database_used_space", [96, 99, 97, 94], "Percent used of the disk holding the data folder: "
                                                                 "[LowToMedium, MediumToHigh, HighToMedium, "
                                                                 "MediumToLow]."),
    Option("backpressure.private_bytes", [72, 75, 73, 71], "Memory of the server process, percent of RAM "
                                                           "(the same four thresholds)."),
    Option("backpressure.system_memory", [88, 94, 89, 84], "Memory in use on the machine, percent "
                                                           "(the same four thresholds)."),
    Option("backpressure.submission_queue_length", [9999, 15000, 10000, 2000], "Messages in the submission queue "
                                                                               "(the same four thresholds)."),
    Option("backpressure.version_buckets", [999, 1500, 1000, 800], "Uncommitted queue work (the same four "
                                                                   "thresholds)."),
    Option("metrics.listen", "127.0.0.1:9464", "HOST:PORT for the Prometheus /metrics endpoint; empty disables it."),
    Option("transport.remote_delivery", True, "Deliver mail for other domains (by MX or the smart host); false "
                                              "keeps it in the Unreachable queue, as Exchange does without a Send "
                                              "connector."),
    Option("transport.smart_host", "", "HOST:PORT every remote domain's mail is relayed through; empty means "
                                       "delivery to each domain's MX hosts."),
    Option("transport.dns_servers", [], "DNS servers (\"HOST:PORT\" IP addresses) for MX and address lookups; "
                                        "empty means the system resolver."),
    Option("transport.dns_timeout", 10, "Seconds a DNS lookup may take before delivery is deferred (4.4.3)."),
    Option("transport.remote_port", 25, "Port remote MX hosts are connected to."),
    Option("transport.outbound_tls", "opportunistic", "STARTTLS on outbound SMTP: opportunistic (when offered, "
                                                      "unverified), required (never send in clear) or off."),
    Option("transport.max_outbound_connections", 1000, "Most outbound SMTP connections at once."),
    Option("transport.max_per_domain_connections", 40, "Most outbound SMTP connections to one domain at once."),
    Option("transport.transient_failure_retry_count", 6, "Retries of a transiently failed recipient at the short "
                                                         "interval before the message retry interval applies."),
    Option("transport.transient_failure_retry_interval", 300, "Seconds between the first retries after a 4xx "
                                                              "(Exchange: TransientFailureRetryInterval)."),
    Option("transport.message_retry_interval", 900, "Seconds between later retries (MessageRetryInterval)."),
    Option("transport.delay_notification_timeout", 4 * 3600, "Seconds undelivered before a delay DSN goes to the "
                                                             "sender (DelayNotificationTimeout)."),
    Option("transport.message_expiration_timeout", 2 * 86400, "Seconds a message may wait in the queue before it "
                                                              "fails with a DSN (MessageExpirationTimeout)."),
    Option("transport.poison_threshold", 2, "Crashes while processing a message before it goes to the poison "
                                            "queue (PoisonThreshold, 1-10)."),
    Option("transport.queue_scan_interval", 5, "Seconds between checks of the queue for work changed by another "
                                               "process (mailroom queue/message commands)."),
    Option("tracking.enabled", True, "Write the message tracking log (<data_dir>/logs/MessageTracking)."),
    Option("tracking.max_age_days", 30, "Days message tracking log files are kept (0: no age limit)."),
    Option("tracking.max_file_bytes", 10 * 1024 * 1024, "Size at which a message tracking log file is closed."),
    Option("tracking.max_directory_bytes", 1000 * 1024 * 1024, "Size of the message tracking log folder beyond "
                                                               "which the oldest files are removed."),
    Option("tracking.log_subject", True, "Record message subjects in the message tracking log."),
    Option("autodiscover.enabled", True, "Answer POX and SOAP Autodiscover under /autodiscover/."),
    Option("tls.cert_file", "", "PEM certificate for HTTPS; empty means a self-signed one in the data folder."),
    Option("tls.key_file", "", "PEM private key for HTTPS."),
    Option("agents.enabled", [], "Transport agents to run, by entry-point name (e.g. \"disclaimer\", "
                                 "\"header-stamp\") or module:Class; each agent's settings go in its own "
                                 "[agents.NAME] table."),
    Option("log_level", "INFO", "Logging level."),
    Option("notifications.push_allow", [], "Hosts and networks (CIDR) push notifications may go to even where the "
                                           "built-in refusals (loopback, link-local, metadata) apply."),
    Option("notifications.push_deny", [], "Hosts and networks (CIDR) push notifications never go to."),
    Option("notifications.push_retry_seconds", 30.0, "First wait before retrying a failed push; it doubles until "
                                                     "the next wait would exceed the StatusFrequency."),
    Option("notifications.push_timeout_seconds", 30.0, "Time one push may take (connect, send, read the answer)."),
    Option("notifications.push_max_answer_bytes", 64 * 1024, "Largest answer to a push read; a longer one is a "
                                                             "failed push."),
    Option("audit.log_owner_actions", False, "Also write owners' own EWS requests to the audit log (access by "
                                             "anyone else - impersonation, delegates - is always written)."),
    Option("throttling.policy_cache_seconds", 300, "Seconds a caller's throttling policy stays cached after it "
                                                     "is read, extended by as much on each use."),
    Option("throttling.policy_cache_max_seconds", 900, "Most seconds a cached throttling policy is used before it "
                                                         "is read again (how long a policy change may take)."),
    Option("throttling.hanging_connection_limit", 10, "Concurrent streaming (GetStreamingEvents) connections per "
                                                      "caller, as Exchange's HangingConnectionLimit."),
)
_BY_KEY = {o.key: o for o in OPTIONS}


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names where."""


@dataclass
class Config:
    values: dict[str, Any] = field(default_factory=lambda: {o.key: o.default for o in OPTIONS})
    sources: dict[str, str] = field(default_factory=lambda: {o.key: "default" for o in OPTIONS})
    agent_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def set(self, key: str, value: Any, source: str) -> None:
        option = _BY_KEY.get(key)
        if option is None:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        if isinstance(option.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML's 30 for a float setting
        if not isinstance(value, type(option.default)):
            raise ConfigError(f"{source}: {key} must be a {type(option.default).__name__}, not {value!r}")
        if isinstance(value, list) and not all(isinstance(item, _item_type(option.default)) for item in value):
            kind = "numbers" if _item_type(option.default) is not str else "strings"
            raise ConfigError(f"{source}: {key} must be a list of {kind}, not {value!r}")
        self.values[key] = value
        self.sources[key] = source

    def source(self, key: str) -> str:
        return self.sources[key]

    @property
    def data_dir(self) -> Path:
        return Path(self.values["data_dir"]).expanduser()

    @property
    def database_url(self) -> str:
        from mailroom.store.engine import sqlite_url

        return self.values["database_url"] or sqlite_url(self.data_dir)


def default(key: str) -> Any:  # noqa: ANN401 - each option's own type
    """An option's default value."""
    return next(option.default for option in OPTIONS if option.key == key)


def _item_type(default: list[Any]) -> type | tuple[type, ...]:
    """What a list setting holds: numbers where its default is numbers (thresholds), else strings."""
    return (int, float) if default and isinstance(default[0], int | float) else str


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def load(config_file: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then ``config_file`` (TOML), then ``overrides`` (flags; None values ignored)."""
    config = Config()
    if config_file is not None:
        try:
            table = tomllib.loads(config_file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
        agents = table.get("agents", {})
        for name, settings in list(agents.items()) if isinstance(agents, dict) else ():
            if isinstance(settings, dict):  # [agents.NAME] tables belong to the agents, not to the schema
                config.agent_settings[name] = agents.pop(name)
        for key, value in _flatten(table).items():
            config.set(key, value, f"{config_file}")
        if "data_dir" in config.values and config.sources["data_dir"] != "default":
            data = Path(config.values["data_dir"]).expanduser()
            if not data.is_absolute():
                config.values["data_dir"] = str((config_file.parent / data).resolve())
    for key, value in (overrides or {}).items():
        if value is not None:
            config.set(key, value, "command line")
    return config


def split_listen(value: str, what: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) to a pair; empty disables the listener."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{what}: expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)
