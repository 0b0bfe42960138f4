"""Prometheus metrics of one receiver app, in a registry of its own (tests run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

#: Webhook latencies, seconds: fine below 25 ms (the p99 goal), coarse up to the produce deadline.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class ReceiverMetrics:
    """Requests by outcome, webhook latency, produce failures and requests in flight."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lakehouse_receiver_requests",
            "Webhook deliveries answered, by outcome (accepted, dlq, or the error code)",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lakehouse_receiver_request_duration_seconds",
            "Time from the start of a webhook request to its answer",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.produce_failures = Counter(
            "lakehouse_receiver_produce_failures",
            "Messages the broker did not acknowledge in time, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.in_flight = 0  # a plain int on the hot path; the gauge reads it when scraped
        Gauge(
            "lakehouse_receiver_in_flight_requests",
            "Webhook requests being handled now",
            registry=self.registry,
        ).set_function(lambda: self.in_flight)

        self._by_outcome: dict[str, Counter] = {}

    def observe(self, outcome: str, seconds: float) -> None:
        """Count one answered webhook and its latency."""
        counter = self._by_outcome.get(outcome)
        if counter is None:  # outcomes are a small fixed set: resolve each label once
            counter = self._by_outcome[outcome] = self.requests.labels(outcome)
        counter.inc()
        self.latency.observe(seconds)

    def render(self) -> bytes:
        """The exposition text of this registry."""
        return generate_latest(self.registry)
