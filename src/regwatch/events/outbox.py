"""The outbox worker: delivers recorded events to their sinks, at least once, in order.

One instance dispatches at a time: the worker takes the store lease `outbox` and renews it;
other instances wait (their lease attempts fail) and take over when it expires, so a crashed
dispatcher is replaced after `delivery.leaseSeconds`. The dispatcher claims due deliveries
(each with its own lease, so one claimed by a crashed process comes back), keeps up to
`delivery.concurrency` attempts in flight over one aiohttp session, and records each outcome:
delivered; skipped (the sink's triggers/filters do not want it, see `matching.py`); held (the
account's rate cap, see `ratecap.py`: deferred to its slot, the attempt not counted); failed
(retried later with backoff, see `retry.py`); or dead-lettered. The store hands out at most one
delivery per sink and repository at a time, oldest first, which keeps each repository's events
in order. Events recorded while nobody dispatches wait in the store and go out on restart.
The dispatcher also prunes the outbox every `prune_interval` (finished deliveries and old events,
after `regwatch.eventRetentionDays`, see `regwatch.store.prune`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import aiohttp

from regwatch.config.settings import ServiceSettings
from regwatch.config.triggers import DeliverySettings, RateCap
from regwatch.events.matching import SinkSet
from regwatch.events.metrics import EventMetrics
from regwatch.events.ratecap import RateCaps
from regwatch.events.retry import RetryPolicy
from regwatch.events.sender import SendResult, send_event
from regwatch.store import AsyncStore, Delivery, Store
from regwatch.store.records import utc_now

log = logging.getLogger(__name__)

LEASE_NAME = "outbox"
# Seconds between two refreshes of the outbox gauges (two GROUP BYs over pending/dead rows):
# every second while deliveries are pending (or new events were just recorded), every 10 s when
# idle. Every second while idle was ~2.5 ms of event-loop time (SQLite reads run inline) that
# the lookups felt as a latency spike each second (bench/api.py).
STATS_INTERVAL = 10.0
BUSY_STATS_INTERVAL = 1.0
PRUNE_INTERVAL = 3600.0  # seconds between outbox prunes (the first soon after taking the lead)
PRUNE_BATCH = 1000  # rows per table per prune transaction


class OutboxWorker:
    """See the module docstring. `run(stopping)` is the coroutine the service supervises."""

    def __init__(
        self,
        store: AsyncStore,
        settings: Callable[[], ServiceSettings],
        *,
        holder: str,
        metrics: EventMetrics | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        poll_interval: float = 1.0,
        stats_interval: float = STATS_INTERVAL,
        prune_interval: float = PRUNE_INTERVAL,
    ) -> None:
        self.store = store
        self.holder = holder
        self.metrics = metrics or EventMetrics()
        self.poll_interval = poll_interval
        self.stats_interval = stats_interval
        self.prune_interval = prune_interval
        self._settings = settings
        self._rng = rng or random.Random()
        self._clock = clock
        self._monotonic = monotonic
        self._wake = asyncio.Event()
        self._seen_settings: ServiceSettings | None = None
        self._sinks = SinkSet([])
        self.rate_caps = RateCaps(self._cap_for)
        self.dispatching = False
        self._renew_at = 0.0
        self._stats_at = 0.0
        self._prune_at = 0.0
        self._in_flight: set[asyncio.Task[None]] = set()

    # --- public --------------------------------------------------------------------------------
    def wake(self) -> None:
        """New events were recorded: look for due deliveries now rather than at the next poll
        (and count them for the gauges soon)."""
        self._stats_soon()
        self._wake.set()

    @property
    def sinks(self) -> SinkSet:
        """The sinks of the current settings (rebuilt when the config was reloaded)."""
        current = self._settings()
        if current is not self._seen_settings:
            self._sinks = SinkSet.from_settings(current)
            self._seen_settings = current
        return self._sinks

    async def run(self, stopping: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
        async with aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": "regwatch-events"},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        ) as session:
            try:
                while not stopping.is_set():
                    await self._cycle(session, stopping)
            finally:
                await self._shutdown()

    # --- the loop ------------------------------------------------------------------------------
    async def _cycle(self, session: aiohttp.ClientSession, stopping: asyncio.Event) -> None:
        if not await self._lead():
            await self._wait(stopping, self._delivery.lease_seconds / 3)
            return
        await self._refresh_stats()
        await self._prune()
        capacity = self._delivery.concurrency - len(self._in_flight)
        claimed: list[Delivery] = []
        # one read while idle, rather than a write transaction (a claim) per poll: on SQLite's
        # single writer thread that took the GIL from the lookups every second (bench/api.py)
        due = await self.store.call(Store.next_delivery_due) if capacity > 0 else None
        if due is not None:  # deliveries pending (due or held back): keep the gauges current
            self._stats_soon()
        if due is not None and due <= self._clock():
            claimed = await self.store.call(
                Store.claim_next_deliveries, self.holder, lease=self._lease, limit=capacity
            )
        for delivery in claimed:
            task = asyncio.create_task(self._process(session, delivery))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        if capacity <= 0 or len(claimed) == capacity:  # full: wait for an attempt to finish
            await self._wait(stopping, self.poll_interval)
            return
        if claimed:  # the next due delivery is another one now
            due = await self.store.call(Store.next_delivery_due)
        await self._wait(stopping, self._idle_timeout(due, found=bool(claimed)))

    def _idle_timeout(self, due: datetime | None, *, found: bool) -> float:
        """Seconds until the next delivery is `due` (bounded by the poll interval)."""
        if due is None:
            return self.poll_interval
        seconds = (due - self._clock()).total_seconds()
        floor = 0.0 if found else 0.05  # due but not claimable (a race): do not spin
        return max(floor, min(self.poll_interval, seconds))

    async def _wait(self, stopping: asyncio.Event, timeout: float) -> None:
        """Until the timeout, a wake-up, a finished attempt, the stop signal or lease renewal."""
        timeout = max(0.0, min(timeout, self._renew_at - self._monotonic()))
        wake = asyncio.ensure_future(self._wake.wait())
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait(
                {wake, stop, *self._in_flight},
                timeout=timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in (wake, stop):
                waiter.cancel()
        self._wake.clear()

    async def _lead(self) -> bool:
        """Hold (take or renew) the dispatcher lease; False while another instance holds it."""
        if self.dispatching and self._monotonic() < self._renew_at:
            return True
        ttl = timedelta(seconds=self._delivery.lease_seconds)
        try:
            held = await self.store.call(Store.acquire_lease, LEASE_NAME, self.holder, ttl)
        except Exception as exc:  # the store is down: try again later, as a follower
            log.warning("outbox: could not take the dispatcher lease: %s", exc)
            held = False
        if held and not self.dispatching:
            log.info("outbox: %s now delivers events", self.holder)
            self.rate_caps = RateCaps(self._cap_for)  # seeded again from the store
        self.dispatching = held
        self.metrics.dispatching.set(1 if held else 0)
        self._renew_at = self._monotonic() + self._delivery.lease_seconds / 3
        return held

    async def _shutdown(self) -> None:
        """Let attempts in flight finish (briefly), then give the dispatcher role away."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self._delivery.timeout_seconds)
        for task in list(self._in_flight):
            task.cancel()
        if self.dispatching:
            with contextlib.suppress(Exception):
                await self.store.call(Store.release_lease, LEASE_NAME, self.holder)
        self.dispatching = False
        self.metrics.dispatching.set(0)

    # --- one delivery --------------------------------------------------------------------------
    async def _process(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        try:
            await self._deliver(session, delivery)
        except Exception:  # its lease expires and it is tried again
            log.exception(
                "outbox: delivery %d to %s failed unexpectedly", delivery.id, delivery.sink
            )

    async def _deliver(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        event = delivery.event
        sink = self.sinks.get(delivery.sink)
        reason = (
            f"sink {delivery.sink!r} is not configured any more"
            if sink is None
            else sink.decide(event.kind, event.account, event.repository, event.tag)
        )
        if sink is None or reason is not None:
            await self.store.call(Store.skip_delivery, delivery.id, self.holder, reason or "")
            self.metrics.deliveries.labels(delivery.sink, "skipped").inc()
            return
        wait = await self._rate_wait(delivery)
        if wait > 0:
            await self._hold(delivery, wait)
            return
        result = await send_event(
            session,
            sink,
            event,
            attempt=delivery.attempts,
            timeout=self._delivery.timeout_seconds,
        )
        await self._record(delivery, result)

    async def _rate_wait(self, delivery: Delivery) -> float:
        sink, account = delivery.sink, delivery.event.account
        if not self.rate_caps.known(sink, account):
            since = self._clock() - timedelta(minutes=1)
            used = await self.store.call(Store.delivered_since, sink, account, since)
            self.rate_caps.seed(sink, account, used)
        return self.rate_caps.take(sink, account, delivery.id)

    async def _hold(self, delivery: Delivery, wait: float) -> None:
        cap = self.rate_caps.cap(delivery.event.account)
        until = self._clock() + timedelta(seconds=wait)
        note = (
            f"held by the rate cap of account {delivery.event.account!r} "
            f"({cap.per_minute:g}/min, burst {cap.burst}) until {until:%H:%M:%S} UTC"
        )
        await self.store.call(Store.defer_delivery, delivery.id, self.holder, until, note)
        self.metrics.deliveries.labels(delivery.sink, "held").inc()

    async def _record(self, delivery: Delivery, result: SendResult) -> None:
        if result.ok:
            await self.store.call(Store.complete_delivery, delivery.id, self.holder)
            self.metrics.deliveries.labels(delivery.sink, "delivered").inc()
            age = (self._clock() - delivery.event.created_at).total_seconds()
            self.metrics.latency.labels(delivery.sink).observe(max(0.0, age))
            return
        delay = self._policy.delay(
            delivery.attempts, self._rng, status=result.status, retry_after=result.retry_after
        )
        retry_at = None if delay is None else self._clock() + timedelta(seconds=delay)
        error = result.error or "failed"
        await self.store.call(
            Store.fail_delivery, delivery.id, self.holder, error, retry_at=retry_at
        )
        outcome = "dead" if retry_at is None else "failed"
        self.metrics.deliveries.labels(delivery.sink, outcome).inc()
        level = logging.ERROR if retry_at is None else logging.WARNING
        log.log(
            level,
            "outbox: event %s to %s, attempt %d: %s%s",
            delivery.event.id,
            delivery.sink,
            delivery.attempts,
            error,
            " — dead-lettered" if retry_at is None else f" — next attempt in {delay:.1f} s",
        )

    # --- pruning -------------------------------------------------------------------------------
    async def _prune(self) -> None:
        """Every `prune_interval`, delete what the retention lets go: one short transaction per
        cycle, the next cycle goes on while there was more (claims interleave with a big prune)."""
        if self._monotonic() < self._prune_at:
            return
        self._prune_at = self._monotonic() + self.prune_interval
        cutoff = self._clock() - self._settings().event_retention
        try:
            pruned = await self.store.call(Store.prune_outbox, cutoff, limit=PRUNE_BATCH)
        except Exception as exc:  # pruning must never stop deliveries: tried again later
            log.warning("outbox: could not prune old deliveries and events: %s", exc)
            return
        if pruned.full(PRUNE_BATCH):
            self._prune_at = 0.0
        if pruned.deliveries or pruned.events:
            log.info(
                "outbox: pruned %d finished deliveries and %d events older than %s",
                pruned.deliveries,
                pruned.events,
                f"{cutoff:%Y-%m-%d %H:%M} UTC",
            )

    # --- settings and statistics ---------------------------------------------------------------
    @property
    def _delivery(self) -> DeliverySettings:
        return self._settings().delivery

    def _cap_for(self, account: str) -> RateCap:
        return self._delivery.cap_for(account)

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._delivery.lease_seconds)

    @property
    def _policy(self) -> RetryPolicy:
        d = self._delivery
        return RetryPolicy(d.retry_base_seconds, d.retry_max_seconds, d.retry_for_hours * 3600)

    async def _refresh_stats(self, *, force: bool = False) -> None:
        if not force and self._monotonic() < self._stats_at:
            return
        self._stats_at = self._monotonic() + self.stats_interval
        try:
            counts = await self.store.call(Store.outbox_counts)
        except Exception as exc:  # metrics must never stop deliveries
            log.warning("outbox: could not count deliveries: %s", exc)
            return
        pending: dict[str, int] = {}
        dead: dict[str, int] = {}
        for (sink, status), count in counts.by_sink_status.items():
            if status == "pending":
                pending[sink] = count
            elif status == "dead":
                dead[sink] = count
        limited = set(self.rate_caps.limited_keys())
        held = {key: n for key, n in counts.pending_by_account.items() if key in limited}
        self.metrics.set_outbox(pending, dead, held)
        if any(pending.values()):
            self._stats_at = self._monotonic() + self._busy_stats_interval

    def _stats_soon(self) -> None:
        """Refresh the gauges within the busy interval (sooner if already due)."""
        self._stats_at = min(self._stats_at, self._monotonic() + self._busy_stats_interval)

    @property
    def _busy_stats_interval(self) -> float:
        return min(self.stats_interval, BUSY_STATS_INTERVAL)
