"""Prometheus metrics for the transport, served at ``http://<metrics.listen>/metrics``.

Every server owns its own ``CollectorRegistry`` (tests run several servers in one process). The
edge (SMTP receive, pickup, back pressure) updates the metrics below directly; the queue plugs
in its readings with ``register_queue_lengths`` and ``messages_processing`` and counts deliveries
with ``count_delivery``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _QueueLengths(Collector):
    """Reads the queue lengths at scrape time, so they are never stale."""

    def __init__(self, lengths: Callable[[], Mapping[str, int]]) -> None:
        self.lengths = lengths

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("mailroom_queue_length", "Messages in each transport queue.", labels=["queue"])
        for queue, length in sorted(self.lengths().items()):
            family.add_metric([queue], length)
        yield family


class TransportMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.backpressure_level = Gauge(
            "mailroom_backpressure_level", "Back-pressure level per resource and overall (0 Normal, 1 Medium, 2 High).",
            ["resource"], registry=self.registry)
        self.backpressure_reading = Gauge(
            "mailroom_backpressure_reading", "The last reading of each back-pressure resource (percent or count).",
            ["resource"], registry=self.registry)
        self.backpressure_changes = Counter(
            "mailroom_backpressure_changes", "Back-pressure level changes (events 15004 and 15005).",
            ["direction"], registry=self.registry)
        self.messages_received = Counter(
            "mailroom_messages_received", "Messages accepted, per listener (inbound, submission, pickup).",
            ["listener"], registry=self.registry)
        self.messages_refused = Counter(
            "mailroom_messages_refused", "Messages refused after DATA or found bad in the pickup directory.",
            ["listener"], registry=self.registry)
        self.smtp_sessions = Counter(
            "mailroom_smtp_sessions", "SMTP connections accepted, per listener.", ["listener"], registry=self.registry)
        self.smtp_sessions_active = Gauge(
            "mailroom_smtp_sessions_active", "SMTP connections open now, per listener.", ["listener"],
            registry=self.registry)
        self.pickup_polls = Counter(
            "mailroom_pickup_polls", "Polls of the pickup directory (scanned, or skipped under back pressure).",
            ["outcome"], registry=self.registry)
        self.messages_processing = Gauge(
            "mailroom_messages_processing", "Messages in a processing pass now (categorizing, delivering, "
                                            "recording the outcome).", registry=self.registry)
        self.deliveries = Counter(
            "mailroom_deliveries", "Delivery outcomes per recipient (destination local|remote; outcome "
                                   "delivered|deferred|failed).", ["destination", "outcome"], registry=self.registry)

    def register_queue_lengths(self, lengths: Callable[[], Mapping[str, int]]) -> None:
        """Expose ``lengths()`` (queue name → messages, e.g. {"submission": 3, "example.com": 1}) as
        ``mailroom_queue_length{queue=...}``. Called once by the queue's service; read at each scrape."""
        self.registry.register(_QueueLengths(lengths))

    def count_delivery(self, destination: str, outcome: str, recipients: int = 1) -> None:
        """Count delivery attempts' outcomes; called by the queue's service."""
        self.deliveries.labels(destination, outcome).inc(recipients)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def application(metrics: TransportMetrics) -> web.Application:
    """The ``/metrics`` endpoint (served by the server on its event loop)."""
    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app
