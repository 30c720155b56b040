"""Backoff with jitter, the retry window, permanent refusals, Retry-After."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.events.retry import RetryPolicy, is_permanent, parse_retry_after


def test_delays_grow_exponentially_up_to_the_maximum() -> None:
    policy = RetryPolicy(base_seconds=5, max_seconds=1800, retry_for_seconds=86_400)
    assert [policy.nominal_delay(n) for n in range(1, 11)] == [
        5, 10, 20, 40, 80, 160, 320, 640, 1280, 1800,
    ]  # fmt: skip
    assert policy.nominal_delay(500) == 1800


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=2**32))
def test_jitter_keeps_each_delay_between_half_and_all_of_the_nominal(
    attempt: int, seed: int
) -> None:
    policy = RetryPolicy(base_seconds=2, max_seconds=600, retry_for_seconds=10**9)
    delay = policy.delay(attempt, random.Random(seed))
    assert delay is not None
    nominal = policy.nominal_delay(attempt)
    assert nominal / 2 <= delay <= nominal


def test_jitter_spreads_deliveries_that_failed_together() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    delays = {policy.delay(3, rng) for _ in range(50)}
    assert len(delays) > 40


def test_the_attempts_cover_the_retry_window_then_the_delivery_is_dead() -> None:
    policy = RetryPolicy(base_seconds=5, max_seconds=1800, retry_for_seconds=24 * 3600)
    last = policy.max_attempts
    waited = sum(policy.nominal_delay(n) for n in range(1, last))
    assert waited >= 24 * 3600  # nominal waits reach the window (hours of retries)...
    assert waited - policy.nominal_delay(last - 1) < 24 * 3600  # ...and not one wait more
    assert policy.delay(last - 1, random.Random(0)) is not None
    assert policy.delay(last, random.Random(0)) is None


def test_a_short_window_allows_few_attempts() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=1, retry_for_seconds=3)
    assert policy.max_attempts == 4
    assert policy.delay(3, random.Random(0)) is not None
    assert policy.delay(4, random.Random(0)) is None


@pytest.mark.parametrize("status", [400, 410, 413, 415, 422])
def test_refusals_that_would_not_change_dead_letter_at_once(status: int) -> None:
    assert is_permanent(status)
    assert RetryPolicy().delay(1, random.Random(0), status=status) is None


@pytest.mark.parametrize("status", [None, 401, 403, 404, 408, 429, 500, 502, 503, 504, 302])
def test_other_failures_are_retried(status: int | None) -> None:
    assert not is_permanent(status)
    assert RetryPolicy().delay(1, random.Random(0), status=status) is not None


def test_retry_after_is_honoured_up_to_the_maximum_delay() -> None:
    policy = RetryPolicy(base_seconds=1, max_seconds=100, retry_for_seconds=10_000)
    assert policy.delay(1, random.Random(0), status=429, retry_after=30) == 30
    assert policy.delay(1, random.Random(0), status=429, retry_after=5000) == 100
    small = policy.delay(1, random.Random(0), status=503, retry_after=0)
    assert small is not None
    assert 0.5 <= small < 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), (" 1.5 ", 1.5), ("", None), (None, None), ("-1", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)  # fmt: skip
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds
