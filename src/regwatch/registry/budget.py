"""A per-registry request budget: a concurrency cap plus pacing before the registry says 429.

- At most `max_concurrency` requests to one registry are in flight, whatever the number of tasks.
- `RateLimit-Limit` / `RateLimit-Remaining` (and `RateLimit-Reset`, or the `;w=` window) are read
  from every response that carries them. Once the remaining quota falls to `low_water` of the
  limit, request starts are spaced so that what is left lasts until the window resets; at zero,
  requests wait for the reset.
- A 429 with `Retry-After` pauses the whole registry, not just the request that got it.

A wait longer than `max_wait` is not slept through: `RateLimitedError` says how long instead, so a
CLI call or a scan fails fast and the scheduler can come back later.

The hot path (no pacing, no pause) is a semaphore acquire and one attribute test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from regwatch.errors import RateLimitedError
from regwatch.registry.backoff import parse_rate_limit

DEFAULT_WINDOW = 60.0


class RegistryBudget:
    """The budget of one registry (host[:port]), shared by every client that talks to it."""

    def __init__(
        self,
        name: str,
        max_concurrency: int,
        clock: Callable[[], float],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        low_water: float = 0.1,
        max_wait: float = 60.0,
    ) -> None:
        self.name = name
        self.max_concurrency = max_concurrency
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._clock = clock
        self._sleep = sleep
        self._low_water = low_water
        self.max_wait = max_wait
        self._pacing = False  # True while paused or spacing requests: the slow path
        self._paused_until = 0.0
        self._interval = 0.0
        self._next_slot = 0.0
        self.limit: int | None = None
        self.remaining: int | None = None
        self.reset_at: float | None = None  # on the monotonic clock

    async def acquire(self) -> None:
        """Wait for a pacing slot (if pacing) and a concurrency slot."""
        if self._pacing:
            await self._wait_for_slot()
        await self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()

    def delay(self) -> float:
        """Seconds the next request would wait for pacing or a pause (0 if none)."""
        if not self._pacing:
            return 0.0
        now = self._clock()
        return max(0.0, self._paused_until - now, self._next_slot - now)

    async def _wait_for_slot(self) -> None:
        now = self._clock()
        start = max(now, self._paused_until, self._next_slot)
        wait = start - now
        if wait > self.max_wait:
            raise RateLimitedError(
                f"registry {self.name}: request budget exhausted for another {wait:.0f} s",
                hint="lower the scan rate or the concurrency, or try again later",
                registry=self.name,
                retry_after=wait,
            )
        if self._interval > 0:
            self._next_slot = start + self._interval
        elif self._paused_until <= now:
            self._pacing = False
        if wait > 0:
            await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every request to this registry for `seconds` (after a 429 / Retry-After)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self._pacing = True

    def observe(self, headers: Mapping[str, str]) -> None:
        """Update the budget from a response's `RateLimit-*` headers (no-op without them)."""
        remaining_header = headers.get("RateLimit-Remaining")
        if remaining_header is None:
            return
        info = parse_rate_limit(
            headers.get("RateLimit-Limit"), remaining_header, headers.get("RateLimit-Reset")
        )
        if info.remaining is None:
            return
        now = self._clock()
        self.remaining = info.remaining
        self.limit = info.limit if info.limit is not None else self.limit
        if info.reset is not None:
            self.reset_at = now + info.reset
        seconds_left = info.reset if info.reset is not None else info.window or DEFAULT_WINDOW
        limit = self.limit or 0
        if info.remaining <= 0:
            self._interval = self._next_slot = 0.0
            self.pause(seconds_left)
        elif limit > 0 and info.remaining <= self._low_water * limit:
            self._interval = seconds_left / info.remaining
            self._pacing = True
        else:
            self._interval = self._next_slot = 0.0
            self._pacing = self._paused_until > now
