"""The running service: config (hot reload), store, transport, scheduler, metrics, workers."""

from regwatch.service.core import Service
from regwatch.service.metrics import Metrics

__all__ = ["Metrics", "Service"]
