"""When to try a failed delivery again, and when to give up. Pure (time and randomness injected).

Exponential backoff with jitter: attempt n waits `min(max, base * 2**(n-1))`, scaled by a random
factor in [0.5, 1) so that many deliveries failing together do not retry together. A
`Retry-After` from the receiver (429/503) is honoured up to the maximum delay. The number of
attempts is bounded so that the nominal delays add up to `retryForHours` (24 h by default, about
60 attempts): counting attempts rather than comparing with the event's age means that a
`redeliver` (which resets the attempts) gets the whole window again, and a restart changes
nothing. After the last attempt the delivery is dead-lettered.

Some answers will not get better by sending the same body again: 400, 410 (Gone: "stop
sending"), 413, 415 and 422 dead-letter at once. Every other failure — connection refused,
timeouts, 5xx, 429, 401/403/404 (a receiver being redeployed or reconfigured) — is retried.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

PERMANENT_STATUSES = frozenset({400, 410, 413, 415, 422})


def is_permanent(status: int | None) -> bool:
    return status is not None and status in PERMANENT_STATUSES


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (only the delta-seconds form)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 5.0
    max_seconds: float = 1800.0
    retry_for_seconds: float = 24 * 3600.0

    def nominal_delay(self, attempt: int) -> float:
        """The un-jittered wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 60)
        return float(min(self.max_seconds, self.base_seconds * 2**exponent))

    @property
    def max_attempts(self) -> int:
        """Attempts whose nominal delays first cover the retry window."""
        total = 0.0
        attempt = 0
        while total < self.retry_for_seconds and self.nominal_delay(attempt + 1) < self.max_seconds:
            attempt += 1  # the doubling phase: a few dozen steps at most
            total += self.nominal_delay(attempt)
        if total < self.retry_for_seconds:  # then waits of max_seconds each
            attempt += math.ceil((self.retry_for_seconds - total) / self.max_seconds)
        return attempt + 1  # the attempt made after the last wait

    def delay(
        self,
        attempt: int,
        rng: random.Random,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to dead-letter the delivery."""
        if is_permanent(status) or attempt >= self.max_attempts:
            return None
        wait = self.nominal_delay(attempt) * (0.5 + rng.random() / 2)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_seconds))
        return wait
