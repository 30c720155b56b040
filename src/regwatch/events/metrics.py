"""Prometheus metrics of event delivery and push notifications (on the service's registry)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600)


class EventMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry(auto_describe=True)
        self.registry = r
        self._series: dict[str, set[tuple[str, ...]]] = {}
        self.deliveries = Counter(
            "regwatch_deliveries",
            "Delivery attempts by outcome (delivered, failed, dead, skipped, held)",
            ["sink", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "regwatch_event_delivery_latency_seconds",
            "From the event being recorded to its delivery",
            ["sink"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.pending = Gauge(
            "regwatch_outbox_pending", "Deliveries waiting in the outbox", ["sink"], registry=r
        )
        self.dead = Gauge("regwatch_outbox_dead", "Dead-lettered deliveries", ["sink"], registry=r)
        self.held = Gauge(
            "regwatch_rate_cap_held",
            "Deliveries held back by the account's rate cap",
            ["sink", "account"],
            registry=r,
        )
        self.dispatching = Gauge(
            "regwatch_outbox_dispatching",
            "1 while this instance holds the outbox lease and delivers events",
            registry=r,
        )
        self.notifications = Counter(
            "regwatch_push_notifications",
            "Pushed tags received by POST /webhooks/registry, by outcome",
            ["source", "outcome"],
            registry=r,
        )

    def set_outbox(
        self,
        pending: Mapping[str, int],
        dead: Mapping[str, int],
        held: Mapping[tuple[str, str], int],
    ) -> None:
        """Replace the gauges with a fresh reading (series that went away are removed)."""
        self._replace("pending", self.pending, {(k,): v for k, v in pending.items()})
        self._replace("dead", self.dead, {(k,): v for k, v in dead.items()})
        self._replace("held", self.held, {(s, a): v for (s, a), v in held.items()})

    def _replace(self, name: str, gauge: Gauge, values: Mapping[tuple[str, ...], int]) -> None:
        for labels in self._series.get(name, set()) - set(values):
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        self._series[name] = set(values)
