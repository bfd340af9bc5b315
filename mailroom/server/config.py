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
    Option("autodiscover.enabled", True, "Answer POX and SOAP Autodiscover under /autodiscover/."),
    Option("tls.cert_file", "", "PEM certificate for HTTPS; empty means a self-signed one in the data folder."),
    Option("tls.key_file", "", "PEM private key for HTTPS."),
    Option("log_level", "INFO", "Logging level."),
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

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def set(self, key: str, value: Any, source: str) -> None:
        option = _BY_KEY.get(key)
        if option is None:
            raise ConfigError(f"{source}: unknown setting {key!r}")
        if not isinstance(value, type(option.default)):
            raise ConfigError(f"{source}: {key} must be a {type(option.default).__name__}, not {value!r}")
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
