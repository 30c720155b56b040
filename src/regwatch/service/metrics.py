"""Prometheus metrics of the service (served at `GET /metrics`).

Every Service has its own `CollectorRegistry`, so tests and several services in one process do
not share counters. Other packages running inside the service (e.g. the events worker) register
their metrics on `service.metrics.registry`.

Registry traffic is counted by `MeteredTransport`, a `Transport` whose `_finished` hook (called
by `send()` once per logical request, retries included) records the final status per registry;
429s and token fetches come from each scan's run record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import Info as InfoMetric

from regwatch import __version__
from regwatch.registry.transport import RequestContext, Transport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SCAN_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
API_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

# The `*_created` series double the output and nobody graphs them (a process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The service's metrics; see the `regwatch_*` names below."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        InfoMetric("regwatch_build", "regwatch version", registry=r).info({"version": __version__})
        self.scans = Counter(
            "regwatch_scans",
            "Account scans by outcome (ok, partial, failed, error, stopped)",
            ["account", "outcome"],
            registry=r,
        )
        self.scan_seconds = Histogram(
            "regwatch_scan_duration_seconds",
            "Wall time of account scans",
            ["account"],
            buckets=SCAN_BUCKETS,
            registry=r,
        )
        self.tag_changes = Counter(
            "regwatch_tag_changes",
            "Tags added, changed (digest moved) or removed by scans",
            ["account", "change"],
            registry=r,
        )
        self.tags = Gauge(
            "regwatch_tags_indexed", "Tagged images in the index", ["account"], registry=r
        )
        self.repositories_failed = Gauge(
            "regwatch_repositories_failed",
            "Repositories whose last scan failed (kept, stale)",
            ["account"],
            registry=r,
        )
        self.last_success = Gauge(
            "regwatch_account_last_success_timestamp_seconds",
            "When the account's last successful scan finished",
            ["account"],
            registry=r,
        )
        self.failures = Gauge(
            "regwatch_account_consecutive_failures",
            "Failed scans in a row",
            ["account"],
            registry=r,
        )
        self.registry_requests = Counter(
            "regwatch_registry_requests",
            "Registry requests (after retries) by final status",
            ["registry", "status"],
            registry=r,
        )
        self.rate_limited = Counter(
            "regwatch_registry_rate_limited",
            "429 answers received (retried ones included)",
            ["account"],
            registry=r,
        )
        self.token_fetches = Counter(
            "regwatch_registry_token_fetches",
            "Bearer tokens fetched (first ones and refreshes)",
            ["account"],
            registry=r,
        )
        self.retries = Counter(
            "regwatch_registry_retries", "Registry requests retried", ["account"], registry=r
        )
        self.api_seconds = Histogram(
            "regwatch_api_request_duration_seconds",
            "API latency by route",
            ["method", "route", "status"],
            buckets=API_BUCKETS,
            registry=r,
        )
        self.config_reloads = Counter(
            "regwatch_config_reloads", "Config file reloads by result", ["result"], registry=r
        )

    def scan_finished(self, account: str, run: Any, seconds: float) -> None:
        """Record a scan's run record (`regwatch.indexer.results.ScanRun`)."""
        outcome = "stopped" if getattr(run, "stopped", False) else str(run.status)
        self.scans.labels(account, outcome).inc()
        self.scan_seconds.labels(account).observe(seconds)
        for change, value in (
            ("added", run.tags_added),
            ("changed", run.tags_changed),
            ("removed", run.tags_removed),
        ):
            if value:
                self.tag_changes.labels(account, change).inc(value)
        self.rate_limited.labels(account).inc(run.rate_limited)
        self.token_fetches.labels(account).inc(run.token_fetches)
        self.retries.labels(account).inc(run.retries)
        self.repositories_failed.labels(account).set(run.repositories_failed)

    def scan_crashed(self, account: str, seconds: float) -> None:
        self.scans.labels(account, "error").inc()
        self.scan_seconds.labels(account).observe(seconds)

    def set_tag_counts(self, by_account: Mapping[str, int]) -> None:
        for account, count in by_account.items():
            self.tags.labels(account).set(count)

    def forget_account(self, account: str) -> None:
        """Drop a deleted account's per-account series."""
        for metric in (
            self.tags,
            self.repositories_failed,
            self.last_success,
            self.failures,
            self.scan_seconds,
            self.rate_limited,
            self.token_fetches,
            self.retries,
        ):
            _remove(metric, account)
        for outcome in ("ok", "partial", "failed", "error", "stopped"):
            _remove(self.scans, account, outcome)
        for change in ("added", "changed", "removed"):
            _remove(self.tag_changes, account, change)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


class MeteredTransport(Transport):
    """A Transport that counts each logical request's final status per registry."""

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._requests = metrics.registry_requests

    def _finished(self, ctx: RequestContext, outcome: str) -> None:
        self._requests.labels(ctx.registry, outcome).inc()
