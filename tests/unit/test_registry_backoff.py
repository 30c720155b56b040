"""Backoff with jitter, Retry-After (seconds and HTTP-date), RateLimit-* parsing, the budget."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.errors import RateLimitedError
from regwatch.registry.backoff import (
    backoff_delay,
    parse_rate_limit,
    parse_retry_after,
)
from regwatch.registry.budget import RegistryBudget

WALL = 1_700_000_000.0


@given(st.integers(0, 40), st.integers(0, 2**32))
def test_backoff_is_within_half_and_all_of_the_capped_exponential(attempt: int, seed: int) -> None:
    delay = backoff_delay(attempt, random.Random(seed), base=0.25, cap=20.0)
    ceiling = min(20.0, 0.25 * 2**attempt)
    assert ceiling / 2 <= delay <= ceiling


def test_backoff_grows_and_is_jittered() -> None:
    rng = random.Random(7)
    firsts = {backoff_delay(0, rng, base=1.0, cap=60.0) for _ in range(20)}
    assert len(firsts) > 1  # jitter: not everyone retries at the same instant
    means = [
        sum(backoff_delay(n, rng, base=1.0, cap=60.0) for _ in range(200)) / 200 for n in range(5)
    ]
    assert means == sorted(means)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0.0), ("5", 5.0), (" 120 ", 120.0), ("1.5", 1.5), ("", None), (None, None),
     ("soon", None), ("-3", None), ("nan", None), ("inf", None), ("²", None), ("\u0663", None)],
)  # fmt: skip
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, WALL) == expected


def test_retry_after_http_date() -> None:
    later = format_datetime(datetime.fromtimestamp(WALL + 30, UTC), usegmt=True)
    assert parse_retry_after(later, WALL) == pytest.approx(30.0)
    earlier = format_datetime(datetime.fromtimestamp(WALL - 30, UTC), usegmt=True)
    assert parse_retry_after(earlier, WALL) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", WALL) == 0.0


@given(st.text(max_size=40))
def test_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, WALL)
    assert result is None or result >= 0


def test_rate_limit_headers() -> None:
    hub = parse_rate_limit("100;w=21600", "76;w=21600", None)
    assert (hub.limit, hub.remaining, hub.reset, hub.window) == (100, 76, None, 21600.0)
    ietf = parse_rate_limit("50", "3", "12")
    assert (ietf.limit, ietf.remaining, ietf.reset, ietf.window) == (50, 3, 12.0, None)
    several = parse_rate_limit("10, 10;w=1, 1000;w=3600", "9", None)
    assert several.limit == 10
    assert parse_rate_limit(None, None, None) == (None, None, None, None)
    assert parse_rate_limit("x", "-1", "y") == (None, None, None, None)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _budget(clock: Clock, **kw: float) -> RegistryBudget:
    return RegistryBudget("reg.example", 4, clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]


async def test_budget_without_headers_does_not_wait() -> None:
    clock = Clock()
    budget = _budget(clock)
    for _ in range(10):
        await budget.acquire()
        budget.release()
    budget.observe({})
    assert clock.slept == []
    assert budget.delay() == 0.0


async def test_budget_caps_concurrency() -> None:
    clock = Clock()
    budget = _budget(clock)
    for _ in range(4):
        await budget.acquire()
    fifth = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    assert not fifth.done()
    budget.release()
    await asyncio.wait_for(fifth, 1)


async def test_budget_paces_below_the_low_water_mark() -> None:
    clock = Clock()
    budget = _budget(clock, low_water=0.1)
    budget.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "50", "RateLimit-Reset": "60"})
    assert budget.delay() == 0.0  # plenty left
    budget.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "5", "RateLimit-Reset": "60"})
    assert (budget.limit, budget.remaining) == (100, 5)
    for _ in range(3):
        await budget.acquire()
        budget.release()
    # 5 requests left for 60 s: one every 12 s (the first goes at once)
    assert clock.slept == [pytest.approx(12.0), pytest.approx(12.0)]


async def test_budget_uses_the_window_when_there_is_no_reset() -> None:
    clock = Clock()
    budget = _budget(clock)
    budget.observe({"RateLimit-Limit": "100;w=100", "RateLimit-Remaining": "10;w=100"})
    await budget.acquire()
    budget.release()
    await budget.acquire()
    budget.release()
    assert clock.slept == [pytest.approx(10.0)]


async def test_budget_exhausted_waits_for_the_reset_or_refuses_long_waits() -> None:
    clock = Clock()
    budget = _budget(clock, max_wait=30.0)
    budget.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "20"})
    await budget.acquire()
    budget.release()
    assert clock.slept == [pytest.approx(20.0)]
    budget.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "300"})
    with pytest.raises(RateLimitedError, match=r"reg\.example") as info:
        await budget.acquire()
    assert info.value.retry_after == pytest.approx(300.0)


async def test_pause_holds_every_request_then_lifts() -> None:
    clock = Clock()
    budget = _budget(clock)
    budget.pause(5.0)
    assert budget.delay() == pytest.approx(5.0)
    await budget.acquire()
    budget.release()
    assert clock.slept == [pytest.approx(5.0)]
    await budget.acquire()
    budget.release()
    assert clock.slept == [pytest.approx(5.0)]  # pause over: no more waiting


async def test_pacing_stops_when_the_quota_recovers() -> None:
    clock = Clock()
    budget = _budget(clock)
    budget.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "2", "RateLimit-Reset": "10"})
    budget.observe(
        {"RateLimit-Limit": "100", "RateLimit-Remaining": "100", "RateLimit-Reset": "60"}
    )
    for _ in range(3):
        await budget.acquire()
        budget.release()
    assert clock.slept == []
