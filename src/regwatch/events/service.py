"""Plugging the events package into the running service (`regwatch.service.Service`).

`install(service)` (listed in `regwatch.api.app.extensions()`):
- every scan records its events with one pending delivery per configured sink
  (`service.set_sinks`); which sinks actually want an event is decided at delivery time
  (`matching.py` says why);
- the outbox worker runs as the supervised worker `outbox`;
- push notifications are verified and applied by a `PushReceiver`, which wakes the worker;
- the metrics go on the service's Prometheus registry.
Routes find these through `events_of(service)`.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from regwatch.config.model import DockerRegistryAccount
from regwatch.events.inbound import PushReceiver
from regwatch.events.metrics import EventMetrics
from regwatch.events.outbox import OutboxWorker
from regwatch.service import Service

_installed: weakref.WeakKeyDictionary[Service, Events] = weakref.WeakKeyDictionary()


class Events:
    """The events machinery of one service. It refers to the service weakly: `_installed` maps
    the service to it, and a strong reference back would keep every service ever created."""

    def __init__(self, service: Service, *, poll_interval: float = 1.0) -> None:
        self._service = weakref.ref(service)
        self.metrics = EventMetrics(service.metrics.registry)
        self.worker = OutboxWorker(
            service.store,
            lambda: self.service.settings,
            holder=service.instance_id,
            metrics=self.metrics,
            poll_interval=poll_interval,
        )
        self.receiver = PushReceiver(
            service.store,
            accounts=lambda: self.service.accounts.accounts.values(),
            transport=lambda: self.service.transport,
            sinks=self.sink_names,
            metrics=self.metrics,
            on_event=self.worker.wake,
        )

    @property
    def service(self) -> Service:
        service = self._service()
        if service is None:
            raise RuntimeError("the service of these events is gone")
        return service

    def sink_names(self) -> Sequence[str]:
        return self.service.settings.sink_names()

    def sinks_for_account(self, account: DockerRegistryAccount) -> Sequence[str]:
        return self.sink_names()


def install(service: Service) -> None:
    """Attach the events machinery to `service` (before `service.start()`); see `events_of`."""
    events = Events(service)
    _installed[service] = events
    service.set_sinks(events.sinks_for_account)
    service.add_worker("outbox", lambda: events.worker.run(service.stopping))


def events_of(service: Service) -> Events | None:
    return _installed.get(service)
