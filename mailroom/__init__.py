"""mailroom: a self-hosted messaging server that speaks Exchange's protocols."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mailroom")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
