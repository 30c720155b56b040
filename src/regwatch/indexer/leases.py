"""Per-account scan leases in the store, so that several `regwatch serve` instances share the scans.

Every instance schedules every account, but scans one only while it holds the account's lease
(`scan:<account>` in the store's lease table; on PostgreSQL taken with `SELECT … FOR UPDATE SKIP
LOCKED`). The lease carries the shared schedule too:

- while scanning, the holder renews it every `ttl / 3` seconds (a heartbeat) to `now + ttl`; a
  crashed holder's lease therefore lapses within `ttl`, and another instance takes the account;
- after a scan the holder keeps it "until next due" (`now + interval`, or the backoff after a
  failure), so nobody scans the account again before the interval has elapsed — once per
  interval across all instances, not once per instance;
- an instance that finds the lease held looks again every `retry_in(interval)` seconds, and the
  holder itself waits a random fraction of that period after its lease's expiry, so the next scan
  goes to whichever instance comes first: no instance is special, and one added later takes a
  share of the accounts.

With one instance (SQLite) the lease is always free or its own: the same code, a cheap upsert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Protocol

from regwatch.store import AsyncStore, Store

log = logging.getLogger(__name__)

DEFAULT_TTL = 30.0  # seconds a scan's lease lasts without a heartbeat
MIN_RETRY = 0.1
MAX_RETRY = 5.0


class LeaseKeeper(Protocol):
    """What the scheduler needs of the leases (see `ScanLeases`)."""

    holder_id: str

    def retry_in(self, interval: float) -> float: ...

    async def take(self, account: str) -> bool: ...

    async def hold_until_due(self, account: str, seconds: float) -> None: ...

    async def holder(self, account: str) -> str | None: ...

    async def release(self, account: str) -> None: ...

    def held(
        self, account: str, stop: asyncio.Event
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Event]: ...


def lease_name(account: str) -> str:
    return f"scan:{account}"


class ScanLeases:
    """The scan leases of one instance (`holder_id`, the service's instance id) in `store`."""

    def __init__(self, store: AsyncStore, holder_id: str, *, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError("the scan lease must last more than 0 seconds")
        self.store = store
        self.holder_id = holder_id
        self.ttl = ttl

    def retry_in(self, interval: float) -> float:
        """How often an instance looks at a lease held by another: a tenth of the interval,
        between 0.1 and 5 seconds (a scan is at most that late after the interval)."""
        return min(MAX_RETRY, max(MIN_RETRY, interval / 10.0))

    async def take(self, account: str) -> bool:
        """Take (or renew) the account's lease for one `ttl`; False while another holds it."""
        return await self._acquire(account, self.ttl)

    async def hold_until_due(self, account: str, seconds: float) -> None:
        """Keep the lease `seconds` more after a scan, so nobody scans before the next due time.
        A failure is only logged: the lease then lapses sooner and another instance may scan."""
        try:
            if not await self._acquire(account, max(seconds, MIN_RETRY)):
                log.warning("account %s: scan lease lost before the scan ended", account)
        except Exception as exc:
            log.warning("account %s: could not keep the scan lease: %s", account, exc)

    async def holder(self, account: str) -> str | None:
        return await self.store.call(Store.lease_holder, lease_name(account))

    async def release(self, account: str) -> None:
        """Give the lease up (a scan stopped early); a failure is only logged (it lapses)."""
        try:
            await self.store.call(Store.release_lease, lease_name(account), self.holder_id)
        except Exception as exc:
            log.warning("account %s: could not release the scan lease: %s", account, exc)

    @contextlib.asynccontextmanager
    async def held(self, account: str, stop: asyncio.Event) -> AsyncIterator[asyncio.Event]:
        """Renew the lease every `ttl / 3` while the block runs; yields the event the scan must
        stop on: set when `stop` is, or when the lease could not be renewed (another instance may
        have taken the account: the scan stops at a repository boundary rather than run twice)."""
        scan_stop = asyncio.Event()
        task = asyncio.create_task(
            self._heartbeat(account, stop, scan_stop), name=f"regwatch-lease-{account}"
        )
        try:
            yield scan_stop
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _heartbeat(self, account: str, stop: asyncio.Event, scan_stop: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 3.0)
            if stop.is_set():
                scan_stop.set()
                return
            try:
                renewed = await self.take(account)
            except Exception as exc:  # the store is unreachable: the lease may lapse meanwhile
                log.warning("account %s: could not renew the scan lease: %s", account, exc)
                continue
            if not renewed:
                log.warning("account %s: scan lease taken by another instance: stopping", account)
                scan_stop.set()
                return

    async def _acquire(self, account: str, seconds: float) -> bool:
        ttl = timedelta(seconds=seconds)
        return await self.store.call(Store.acquire_lease, lease_name(account), self.holder_id, ttl)
