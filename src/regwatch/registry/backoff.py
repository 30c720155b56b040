"""Pure retry arithmetic: jittered exponential backoff, `Retry-After` and `RateLimit-*` headers.

Backoff uses "equal jitter": attempt n waits between half and all of `min(cap, base * 2**n)`, so
concurrent clients spread out but nobody retries immediately. `Retry-After` (seconds or an
HTTP-date, RFC 9110 §10.2.3) overrides the backoff when present.
"""

from __future__ import annotations

import math
import random
from email.utils import parsedate_to_datetime
from typing import NamedTuple

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def backoff_delay(attempt: int, rng: random.Random, *, base: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry)."""
    ceiling = min(cap, base * float(2 ** min(attempt, 30)))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, wall_now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date); None if absent or
    unparseable. A date in the past means 0."""
    if value is None:
        return None
    text = value.strip()
    if not text or not text.isascii():  # HTTP header values are ASCII; str.isdigit takes '²'
        return None
    if text.isdigit():
        return float(int(text))
    try:
        number = float(text)  # not allowed by the RFC, but some servers send "1.5"
    except ValueError:
        pass
    else:
        return number if math.isfinite(number) and number >= 0 else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - wall_now)


class RateLimitInfo(NamedTuple):
    """What `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` said; None = unknown.

    `window` is the policy window (`;w=21600` on Docker Hub), `reset` the seconds until it ends.
    """

    limit: int | None
    remaining: int | None
    reset: float | None
    window: float | None


def parse_rate_limit(limit: str | None, remaining: str | None, reset: str | None) -> RateLimitInfo:
    """Parse the three headers (each may be missing). `100;w=21600` → 100 with window 21600."""
    limit_n, limit_w = _quota(limit)
    remaining_n, remaining_w = _quota(remaining)
    reset_s = _number(reset.split(";", 1)[0]) if reset else None
    return RateLimitInfo(
        limit=int(limit_n) if limit_n is not None else None,
        remaining=int(remaining_n) if remaining_n is not None else None,
        reset=reset_s,
        window=limit_w if limit_w is not None else remaining_w,
    )


def _quota(value: str | None) -> tuple[float | None, float | None]:
    """`N` or `N;w=W` (the first of a comma-separated list of policies)."""
    if not value:
        return None, None
    first = value.split(",", 1)[0]
    parts = [p.strip() for p in first.split(";")]
    count = _number(parts[0])
    window = None
    for part in parts[1:]:
        name, _, raw = part.partition("=")
        if name.strip().lower() == "w":
            window = _number(raw)
    return count, window


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
