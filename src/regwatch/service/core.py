"""The `Service`: what `regwatch serve` runs, independent of HTTP.

It owns the config file (watched, hot-reloaded), the store, the one registry `Transport` of the
process, the scan scheduler, the metrics and the background workers of other packages. The API
(`regwatch.api.create_app`) reads it; the events package plugs its workers into it. It lives
outside `regwatch.api` so that those packages can use it without importing the API layer.

    service = Service.open(config_path)        # sync: loads the config, opens the store
    await service.start()                      # in the running loop (the FastAPI lifespan)
    ...
    await service.stop()                       # scans stop at a repository boundary

Plugging in (before `start()`): `service.add_worker(name, factory)` for a coroutine that runs
until `service.stopping` is set; `service.set_sinks(fn)` for the outbox sinks each scan records
events for; `service.on_reload(callback)` to hear about every applied config version.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from regwatch.config.halconfig import resolve_config_path
from regwatch.config.model import DockerRegistryAccount
from regwatch.config.settings import ServiceSettings
from regwatch.errors import RegwatchError
from regwatch.indexer.job_worker import JobWorker
from regwatch.indexer.leases import ScanLeases
from regwatch.indexer.reload import AccountSet, ConfigSnapshot, ConfigWatcher, load_snapshot
from regwatch.indexer.scheduler import AccountSchedule, ScanFunction, Scheduler, diff_accounts
from regwatch.indexer.shares import DEFAULT_SHARE_ABOVE
from regwatch.registry import RegistryClient
from regwatch.registry.transport import Transport
from regwatch.service import instances
from regwatch.service.instances import HOLDER_PREFIX, SCAN_LEASE_ENV, SHARE_ENV
from regwatch.service.metrics import MeteredTransport, Metrics
from regwatch.service.workers import Worker, WorkerFactory, Workers, describe_error
from regwatch.store import AsyncStore, Store, open_store, resolve_store_url

log = logging.getLogger(__name__)
__all__ = ["HOLDER_PREFIX", "SCAN_LEASE_ENV", "SHARE_ENV", "Service"]

SinksFunction = Callable[[DockerRegistryAccount], Sequence[str]]
ReloadListener = Callable[[ConfigSnapshot], Awaitable[None] | None]


class Service:
    """See the module docstring."""

    def __init__(
        self,
        snapshot: ConfigSnapshot,
        store: Store,
        *,
        scan: ScanFunction | None = None,
        rng: random.Random | None = None,
        poll_interval: float = 1.0,
        stop_timeout: float = 30.0,
        environ: Mapping[str, str] | None = None,
        instance_id: str | None = None,
        scanning: bool = True,
        scan_lease: float | None = None,
    ) -> None:
        self.config_path = snapshot.config.path
        self.snapshot = snapshot
        self.store = AsyncStore(store)
        self.metrics = Metrics()
        self.instance_id = instance_id or f"{HOLDER_PREFIX}{socket.gethostname()}:{os.getpid()}"
        self.stopping = asyncio.Event()
        self.started_at: float | None = None
        self.stop_timeout = stop_timeout
        self.scanning = scanning  # False: serve the index as it is (API and workers only)
        env = environ or os.environ
        self.leases = ScanLeases(
            self.store, self.instance_id, ttl=scan_lease or instances.lease_seconds(env)
        )
        # None: every account is scanned whole by its lease's holder (the default on SQLite,
        # where a single process writes); else larger accounts' passes are shared
        self.share_above = instances.share_above(
            env, default=None if store.is_sqlite else DEFAULT_SHARE_ABOVE
        )
        self.jobs = JobWorker(
            self.store,
            self.instance_id,
            accounts=lambda: self.accounts.accounts,
            transport=lambda: self.transport,
            sinks=self.sinks_for,
            ttl=self.leases.ttl,
        )
        self.scheduler = Scheduler(
            scan or self._scan_account,
            rng=rng,
            on_result=self._scan_finished,
            on_error=self._scan_crashed,
            leases=self.leases,
        )
        self.watcher = ConfigWatcher(
            self.config_path,
            snapshot,
            self._apply,
            interval=poll_interval,
            environ=environ,
            on_error=lambda exc: self.metrics.config_reloads.labels("error").inc(),
        )
        self._workers = Workers(self.stopping)
        self._transport: Transport | None = None
        self._clients: dict[str, tuple[DockerRegistryAccount, RegistryClient]] = {}
        self._sinks: SinksFunction = _no_sinks
        self._reload_listeners: list[ReloadListener] = []
        self._lock = asyncio.Lock()

    @classmethod
    def open(
        cls,
        config_path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> Service:
        """Load the config file and open (or create) the store. Raises ConfigError/StoreError."""
        env = os.environ if environ is None else environ
        snapshot = load_snapshot(resolve_config_path(config_path), environ=env)
        store = open_store(resolve_store_url(snapshot.settings.store.url, env))
        try:
            return cls(snapshot, store, environ=env, **kwargs)
        except BaseException:  # e.g. a bad REGWATCH_SCAN_LEASE_SECONDS: do not leak the store
            store.close()
            raise

    # --- views -----------------------------------------------------------------------------------
    @property
    def settings(self) -> ServiceSettings:
        return self.snapshot.settings

    @property
    def accounts(self) -> AccountSet:
        return self.snapshot.accounts

    def account(self, name: str) -> DockerRegistryAccount | None:
        return self.snapshot.accounts.accounts.get(name)

    def schedule(self, name: str) -> AccountSchedule | None:
        return self.scheduler.accounts.get(name)

    @property
    def transport(self) -> Transport:
        """The process's registry transport (exists between `start()` and `stop()`)."""
        if self._transport is None:
            raise RuntimeError("the service is not started: no transport yet")
        return self._transport

    @property
    def workers(self) -> Mapping[str, Worker]:
        return self._workers.workers

    # --- plugging in -----------------------------------------------------------------------------
    def add_worker(self, name: str, factory: WorkerFactory) -> None:
        """Run `factory()` as a supervised task from `start()` until `stopping` is set."""
        self._workers.add(name, factory)
        if self.started_at is not None:
            self._workers.start_all()

    def set_sinks(self, sinks: SinksFunction) -> None:
        """Which outbox sinks the scans of an account record events for."""
        self._sinks = sinks

    def on_reload(self, listener: ReloadListener) -> None:
        """Called (or awaited) with every config version applied after start-up."""
        self._reload_listeners.append(listener)

    # --- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Create the transport, reconcile the store with the config, start scans, the config
        watcher and the workers."""
        self._transport = MeteredTransport(self.metrics)
        self.started_at = time.time()
        await self._remove_unconfigured()
        await instances.close_abandoned_runs(self)
        if self.scanning:
            await self.scheduler.apply(self.accounts.accounts.values())
        await self._refresh_tag_counts()
        self._log_accounts()
        self.add_worker("config-watcher", lambda: self.watcher.run(self.stopping))
        if self.scanning:
            self.add_worker("scan-requests", lambda: instances.watch_scan_requests(self))
        if self.scanning and self.share_above is not None:
            self.add_worker("scan-jobs", lambda: self.jobs.run(self.stopping))
        self._workers.start_all()

    async def stop(self) -> None:
        """Stop everything: scans stop at a repository boundary (each repository's result is
        committed whole or not at all), workers return, queued store writes finish."""
        self.stopping.set()
        await self.scheduler.stop(timeout=self.stop_timeout)
        await self._workers.stop_all(timeout=self.stop_timeout)
        if self._transport is not None:
            await self._transport.close()
        await self.store.aclose()

    def request_scan(self, name: str) -> AccountSchedule | None:
        return self.scheduler.request_scan(name)

    async def queue_scan(self, name: str) -> dict[str, Any]:
        """Scan now, whichever instance holds the account (`instances.queue_scan`)."""
        return await instances.queue_scan(self, name)

    # --- config changes --------------------------------------------------------------------------
    async def _apply(self, snapshot: ConfigSnapshot) -> None:
        """Apply a new config version: the API sees the new accounts at once; deleted accounts'
        scans are stopped before their data is deleted."""
        async with self._lock:
            previous = self.snapshot
            self.snapshot = snapshot
            if self.scanning:
                applied = await self.scheduler.apply(snapshot.accounts.accounts.values())
            else:
                applied = diff_accounts(previous.accounts.accounts, snapshot.accounts.accounts)
            for name in applied.removed:
                await self._delete_account(name)
            self.metrics.config_reloads.labels("ok").inc()
            _warn_restart_settings(previous.settings, snapshot.settings)
            log.warning(
                "config reloaded: %d account(s); added %s, updated %s, removed %s",
                len(snapshot.accounts.accounts),
                list(applied.added) or "none",
                list(applied.updated) or "none",
                list(applied.removed) or "none",
            )
        for listener in self._reload_listeners:
            outcome = listener(snapshot)
            if inspect.isawaitable(outcome):
                await outcome

    async def _delete_account(self, name: str) -> None:
        self._clients.pop(name, None)
        await self.store.call(Store.delete_account, name)
        self.metrics.forget_account(name)
        log.warning("account %s removed from the config: its index was deleted", name)

    async def _remove_unconfigured(self) -> None:
        """Accounts deleted from the file while the service was down lose their data too (an
        entry that is only invalid keeps it)."""
        keep = set(self.accounts.accounts) | set(self.accounts.errors)
        for name in await self.store.call(Store.accounts):
            if name not in keep:
                await self._delete_account(name)

    def _log_accounts(self) -> None:
        if not self.accounts.enabled and self.accounts.accounts:
            log.warning(
                "the docker-registry provider is disabled in %s; indexing its accounts anyway "
                "(enable it with `regwatch config provider docker-registry enable`)",
                self.config_path,
            )
        for name, error in self.accounts.errors.items():
            log.error("account %s: %s", name, error)

    # --- scans -----------------------------------------------------------------------------------
    async def _scan_account(self, account: DockerRegistryAccount, stop: asyncio.Event) -> Any:
        await instances.consume_scan_request(self, account.name)
        run = await instances.scan_pass(self, account, stop)
        await self._refresh_tag_counts()
        return run

    def sinks_for(self, account: DockerRegistryAccount) -> Sequence[str]:
        """The outbox sinks the account's scans record events for (`set_sinks`)."""
        return self._sinks(account)

    def client_for(self, account: DockerRegistryAccount) -> RegistryClient | None:
        """The account's client, kept across scans (its learned auth scheme and tokens save
        requests) and rebuilt when the account's settings change. None: let the scan build one
        (and report a client that cannot be built, e.g. an unreadable CA file, as its error)."""
        kept = self._clients.get(account.name)
        if kept is not None and kept[0] == account:
            return kept[1]
        try:
            client = RegistryClient(
                account.endpoint(), account.credentials(), transport=self.transport
            )
        except RegwatchError:
            self._clients.pop(account.name, None)
            return None
        self._clients[account.name] = (account, client)
        return client

    def _scan_finished(self, entry: AccountSchedule, run: Any, seconds: float) -> None:
        self.metrics.scan_finished(entry.name, run, seconds)
        self._account_gauges(entry)
        changed = run.tags_added or run.tags_changed or run.tags_removed
        level = logging.INFO if changed or run.status != "ok" else logging.DEBUG
        log.log(
            level,
            "account %s: %s in %.1f s, %d/%d repositories, tags +%d ~%d -%d, %d requests%s",
            entry.name, run.status, seconds, run.repositories_ok, run.repositories,
            run.tags_added, run.tags_changed, run.tags_removed, run.requests,
            f" ({run.account_error})" if run.account_error else "",
        )  # fmt: skip

    def _scan_crashed(self, entry: AccountSchedule, exc: BaseException, seconds: float) -> None:
        self.metrics.scan_crashed(entry.name, seconds)
        self._account_gauges(entry)

    def _account_gauges(self, entry: AccountSchedule) -> None:
        self.metrics.failures.labels(entry.name).set(entry.failures)
        if entry.last_success_at is not None:
            self.metrics.last_success.labels(entry.name).set(entry.last_success_at)

    async def _refresh_tag_counts(self) -> None:
        try:
            counts = await self.store.call(Store.counts)
        except Exception as exc:  # metrics must never take the service down
            log.warning("could not count the index for /metrics: %s", describe_error(exc))
            return
        self.metrics.set_tag_counts(
            {name: counts.tags_by_account.get(name, 0) for name in self.accounts.accounts}
        )


def _no_sinks(account: DockerRegistryAccount) -> Sequence[str]:
    return ()


def _warn_restart_settings(before: ServiceSettings, after: ServiceSettings) -> None:
    if before.store != after.store or before.listen != after.listen:
        log.warning("regwatch.store / regwatch.listen changed: restart the service to apply them")
