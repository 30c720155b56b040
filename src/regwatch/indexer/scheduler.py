"""The scan scheduler: every account scanned every `cacheIntervalSeconds`, with jitter.

One asyncio task per account runs that account's scans one after another, so an account is never
scanned twice at once, and a slow or failing registry only ever delays its own account: the API
and the other accounts' tasks keep running on the loop. After a failure the account backs off
(doubling from its interval up to `max_backoff`); a success resets it.

- `apply(accounts)` adds, reschedules (edited settings: the old task stops at a repository
  boundary, a new one starts with the new settings) and stops (deleted) accounts;
- `request_scan(name)` asks for a scan now; during a scan it asks for another right after it;
- `stop()` asks every scan to stop at a repository boundary and waits for them.

With `leases` (several instances on one store, see `regwatch.indexer.leases`), an account is
scanned only while this instance holds its lease; when another holds it, the account's loop looks
again a little later, and after a scan the lease is kept until the next due time, which makes the
schedule shared by every instance.

The scan itself is injected (`ScanFunction`), as are the random generator (jitter), the monotonic
clock and the wait primitive, so the cadence is unit-tested in virtual time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import RegwatchError
from regwatch.indexer.leases import LeaseKeeper

log = logging.getLogger(__name__)

ScanState = Literal["pending", "scanning", "idle", "backoff", "stopped"]
DEFAULT_JITTER = 0.1
DEFAULT_MAX_BACKOFF = 900.0
MAX_FIRST_DELAY = 5.0


class ScanFunction(Protocol):
    """Scan one account once; honour `stop` at a repository boundary.

    Return a result whose truthy `failed` attribute (if any) says the account failed entirely;
    raise for a scan that could not run at all. Both count as failures for the backoff.
    """

    def __call__(self, account: DockerRegistryAccount, stop: asyncio.Event) -> Awaitable[Any]: ...


Waiter = Callable[[asyncio.Event, float], Awaitable[bool]]


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set (True) or `timeout` seconds have passed (False)."""
    if event.is_set():
        return True
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True


def jittered(seconds: float, rng: random.Random, jitter: float) -> float:
    """`seconds` spread by ±`jitter` (a fraction), so that accounts do not scan in lockstep."""
    return seconds * (1.0 + rng.uniform(-jitter, jitter))


def next_delay(
    interval: float,
    failures: int,
    rng: random.Random,
    *,
    jitter: float = DEFAULT_JITTER,
    max_backoff: float = DEFAULT_MAX_BACKOFF,
) -> float:
    """Seconds until the next scan: the interval after a success; after `failures` failures in
    a row, the interval doubled per failure, capped at `max(interval, max_backoff)`."""
    if failures <= 0:
        return jittered(interval, rng, jitter)
    cap = max(interval, max_backoff)
    return min(cap, jittered(min(cap, interval * 2.0**failures), rng, jitter))


def first_delay(interval: float, rng: random.Random, *, jitter: float = DEFAULT_JITTER) -> float:
    """Seconds before an account's first scan: soon, spread over `jitter` of its interval (at
    most `MAX_FIRST_DELAY`, so that a new account with a long interval is not left unindexed)."""
    return rng.uniform(0.0, min(interval * jitter, MAX_FIRST_DELAY))


def scan_failed(result: Any) -> bool:
    return bool(getattr(result, "failed", False))


@dataclass
class AccountSchedule:
    """What the scheduler knows about one account (read by /health and the status endpoint).

    Times are on the scheduler's monotonic clock except the `*_at` wall times (epoch seconds).
    """

    account: DockerRegistryAccount
    state: ScanState = "pending"
    scans: int = 0
    failures: int = 0  # consecutive
    last_started_at: float | None = None
    last_finished_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None
    last_result: Any = None
    next_scan_in: float | None = None  # seconds, as of `last_finished_at` (or the start)
    next_due: float | None = None  # monotonic
    lease_holder: str | None = None  # with leases: who held the lease when last looked at
    lease_checked_at: float | None = None  # wall time of that look
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    requested: bool = False
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.account.name


@dataclass(frozen=True)
class Applied:
    """What `Scheduler.apply` changed, by account name."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def diff_accounts(
    old: Mapping[str, DockerRegistryAccount], new: Mapping[str, DockerRegistryAccount]
) -> Applied:
    """Which accounts were added, edited (any setting differs) or removed, in `new`'s order."""
    return Applied(
        added=tuple(name for name in new if name not in old),
        updated=tuple(name for name in new if name in old and old[name] != new[name]),
        removed=tuple(name for name in old if name not in new),
    )


class Scheduler:
    """Per-account scan loops (see the module docstring)."""

    def __init__(
        self,
        scan: ScanFunction,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        wait: Waiter = wait_event,
        jitter: float = DEFAULT_JITTER,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        on_result: Callable[[AccountSchedule, Any, float], None] | None = None,
        on_error: Callable[[AccountSchedule, BaseException, float], None] | None = None,
        leases: LeaseKeeper | None = None,
    ) -> None:
        self._scan = scan
        self._rng = rng or random.Random()
        self._clock = clock
        self._wall = wall_clock
        self._wait = wait
        self.jitter = jitter
        self.max_backoff = max_backoff
        self._on_result = on_result
        self._on_error = on_error
        self._leases = leases
        self._accounts: dict[str, AccountSchedule] = {}
        self._closed = False

    @property
    def accounts(self) -> Mapping[str, AccountSchedule]:
        return self._accounts

    # --- changes ---------------------------------------------------------------------------------
    async def apply(self, accounts: Iterable[DockerRegistryAccount]) -> Applied:
        """Schedule exactly `accounts`: start new ones, restart edited ones, stop removed ones.

        Returns once removed and edited accounts' old scans have stopped, so the caller may then
        delete a removed account's data without a scan writing it back."""
        wanted = {account.name: account for account in accounts}
        current = {name: entry.account for name, entry in self._accounts.items()}
        applied = diff_accounts(current, wanted)
        await self._stop_many([self._accounts.pop(n) for n in applied.removed + applied.updated])
        for name in applied.updated + applied.added:
            self._start(wanted[name])
        return applied

    def _start(self, account: DockerRegistryAccount) -> None:
        if self._closed:
            return
        entry = AccountSchedule(account)
        entry.next_scan_in = first_delay(
            account.cache_interval_seconds, self._rng, jitter=self.jitter
        )
        entry.next_due = self._clock() + entry.next_scan_in
        entry.task = asyncio.create_task(self._loop(entry), name=f"regwatch-scan-{account.name}")
        self._accounts[account.name] = entry

    def request_scan(self, name: str) -> AccountSchedule | None:
        """Scan `name` now (or right after its running scan); None for an unknown account."""
        entry = self._accounts.get(name)
        if entry is None:
            return None
        entry.requested = True
        entry.wake.set()
        return entry

    async def stop(self, timeout: float | None = None) -> None:
        """Stop every account's scans at a repository boundary; cancel what outlasts `timeout`."""
        self._closed = True
        entries = list(self._accounts.values())
        self._accounts.clear()
        await self._stop_many(entries, timeout)

    async def _stop_many(
        self, entries: list[AccountSchedule], timeout: float | None = None
    ) -> None:
        for entry in entries:
            entry.stop.set()
            entry.wake.set()
        tasks = [entry.task for entry in entries if entry.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            log.warning(
                "scan task %s did not stop within %s s: cancelled", task.get_name(), timeout
            )
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- the per-account loop --------------------------------------------------------------------
    async def _loop(self, entry: AccountSchedule) -> None:
        while not entry.stop.is_set():
            delay = max(0.0, (entry.next_due or 0.0) - self._clock())
            if not entry.requested and delay > 0:
                entry.wake.clear()
                await self._wait(entry.wake, delay)
                if entry.stop.is_set():
                    break
                if not entry.requested and self._clock() < (entry.next_due or 0.0):
                    continue  # woken early for nothing (e.g. a spurious wake): wait again
            entry.requested = False
            if await self._leased(entry):
                await self._scan_once(entry)
        entry.state = "stopped"

    async def _leased(self, entry: AccountSchedule) -> bool:
        """Take the account's lease (always True without leases); when another instance holds it,
        or the store cannot say, look again after the lease retry period."""
        if self._leases is None:
            return True
        try:
            taken = await self._leases.take(entry.name)
            holder = self._leases.holder_id if taken else await self._leases.holder(entry.name)
        except Exception as exc:
            log.warning("account %s: could not take the scan lease: %s", entry.name, exc)
            taken, holder = False, None
        entry.lease_holder, entry.lease_checked_at = holder, self._wall()
        if not taken:
            retry = self._leases.retry_in(float(entry.account.cache_interval_seconds))
            entry.next_scan_in = retry * self._rng.uniform(0.5, 1.5)
            entry.next_due = self._clock() + entry.next_scan_in
        return taken

    async def _scan_once(self, entry: AccountSchedule) -> None:
        entry.state = "scanning"
        entry.scans += 1
        entry.last_started_at = self._wall()
        started = self._clock()
        try:
            result = await self._scan_leased(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a scan that could not run: log, back off, keep scheduling
            self._failed(entry, exc, self._clock() - started)
        else:
            self._finished(entry, result, self._clock() - started)
        entry.last_finished_at = self._wall()
        interval = float(entry.account.cache_interval_seconds)
        entry.next_scan_in = next_delay(
            interval, entry.failures, self._rng, jitter=self.jitter, max_backoff=self.max_backoff
        )
        entry.next_due = self._clock() + entry.next_scan_in
        if self._leases is not None and entry.stop.is_set():
            await self._leases.release(entry.name)  # stopped mid-scan: another may go on at once
        elif self._leases is not None:
            await self._leases.hold_until_due(entry.name, entry.next_scan_in)
            # everyone (this instance too) looks at the lapsed lease at a random moment of the
            # retry period, so the next scan goes to any instance
            retry = self._leases.retry_in(interval)
            entry.next_due += self._rng.uniform(0.0, retry)
        entry.state = "backoff" if entry.failures else "idle"

    async def _scan_leased(self, entry: AccountSchedule) -> Any:
        if self._leases is None:
            return await self._scan(entry.account, entry.stop)
        async with self._leases.held(entry.name, entry.stop) as stop:
            return await self._scan(entry.account, stop)

    def _finished(self, entry: AccountSchedule, result: Any, seconds: float) -> None:
        entry.last_result = result
        if scan_failed(result):
            entry.failures += 1
            entry.last_error = getattr(result, "account_error", None) or "the scan failed"
        else:
            entry.failures = 0
            entry.last_error = None
            entry.last_success_at = self._wall()
        if self._on_result is not None:
            self._on_result(entry, result, seconds)

    def _failed(self, entry: AccountSchedule, exc: Exception, seconds: float) -> None:
        entry.failures += 1
        if isinstance(exc, RegwatchError):
            entry.last_error = str(exc)
            log.warning("account %s: scan failed: %s", entry.name, exc)
        else:
            entry.last_error = f"internal error ({type(exc).__name__})"
            log.exception("account %s: scan crashed", entry.name)
        if self._on_error is not None:
            self._on_error(entry, exc, seconds)
