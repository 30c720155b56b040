"""Token expiry arithmetic and the single-flight token cache, on an injected clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.registry.tokens import (
    MIN_LIFETIME,
    Token,
    TokenCache,
    TokenKey,
    TokenResponseError,
    parse_issued_at,
    parse_token_response,
    renew_margin,
    token_lifetime,
)

WALL = 1_700_000_000.0


def iso(seconds_before_wall: float) -> str:
    moment = datetime.fromtimestamp(WALL - seconds_before_wall, UTC)
    return moment.isoformat().replace("+00:00", "Z")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [(300, 300.0), (60, 60.0), (10, 60.0), (0, 60.0), (-5, 60.0), (None, 60.0), ("300", 60.0),
     (True, 60.0), (float("inf"), 60.0), (3600.5, 3600.5)],
)  # fmt: skip
def test_expires_in_has_a_60_second_minimum(expires_in: object, expected: float) -> None:
    assert token_lifetime(expires_in, None, WALL) == expected


def test_issued_at_shortens_the_lifetime_by_the_age() -> None:
    assert token_lifetime(300, iso(100), WALL) == pytest.approx(200.0)


def test_issued_at_in_the_future_counts_as_age_zero() -> None:
    assert token_lifetime(300, iso(-50), WALL) == 300.0


def test_issued_at_older_than_the_lifetime_is_clock_skew_and_ignored() -> None:
    assert token_lifetime(300, iso(3600), WALL) == 300.0


def test_issued_at_parsing() -> None:
    assert (
        parse_issued_at("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC).timestamp()
    )
    assert parse_issued_at("2024-05-01T12:00:00+02:00") == parse_issued_at("2024-05-01T10:00:00Z")
    assert parse_issued_at("2024-05-01T10:00:00") is None  # no zone: unknowable
    assert parse_issued_at("yesterday") is None
    assert parse_issued_at(12345) is None


@given(
    st.one_of(st.none(), st.integers(-(10**6), 10**7), st.floats(allow_nan=True)),
    st.floats(min_value=-1e6, max_value=1e6),
)
def test_lifetime_is_always_positive_and_at_least_the_minimum_without_issued_at(
    expires_in: float | None, age: float
) -> None:
    without = token_lifetime(expires_in, None, WALL)
    assert without >= MIN_LIFETIME
    with_age = token_lifetime(expires_in, iso(age), WALL)
    assert 0 < with_age <= without


def test_parse_token_response_fields_and_deadlines() -> None:
    token = parse_token_response({"token": "abc", "expires_in": 300}, 1000.0, WALL)
    assert token.header == "Bearer abc"
    assert token.expires_at == 1300.0
    assert token.renew_at == 1300.0 - renew_margin(300.0)
    assert 1000.0 < token.renew_at < token.expires_at
    access = parse_token_response({"access_token": "xyz"}, 0.0, WALL)
    assert access.header == "Bearer xyz"
    assert access.expires_at == 60.0
    both = parse_token_response({"token": "t", "access_token": "a", "refresh_token": "r"}, 0, WALL)
    assert both.header == "Bearer t"
    assert both.refresh_token == "r"


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"token": 5}, [], "token", None])
def test_parse_token_response_without_token(body: object) -> None:
    with pytest.raises(TokenResponseError):
        parse_token_response(body, 0.0, WALL)


def test_token_repr_hides_the_value() -> None:
    token = parse_token_response({"token": "s3cr3t-token"}, 0.0, WALL)
    assert "s3cr3t" not in repr(token)


def _token(now: float, lifetime: float, name: str = "t") -> Token:
    return Token(f"Bearer {name}", now + lifetime, now + lifetime - renew_margin(lifetime))


KEY = TokenKey("https://auth/token", "svc", ("repository:a:pull",))


async def test_cache_reuses_a_fresh_token_and_renews_before_expiry() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    fetches = 0

    async def fetch() -> Token:
        nonlocal fetches
        fetches += 1
        return _token(clock.now, 300, f"t{fetches}")

    first = await cache.get(KEY, fetch)
    clock.now += 200
    assert await cache.get(KEY, fetch) is first
    assert fetches == 1
    clock.now = first.renew_at  # still valid (before expires_at) but due for renewal
    assert clock.now < first.expires_at
    second = await cache.get(KEY, fetch)
    assert fetches == 2
    assert second.header == "Bearer t2"


async def test_cache_keys_are_independent() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    other = KEY._replace(scopes=("registry:catalog:*",))

    async def fetch_a() -> Token:
        return _token(clock.now, 300, "a")

    async def fetch_b() -> Token:
        return _token(clock.now, 300, "b")

    assert (await cache.get(KEY, fetch_a)).header == "Bearer a"
    assert (await cache.get(other, fetch_b)).header == "Bearer b"
    assert len(cache) == 2


async def test_single_flight_under_concurrency() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    fetches = 0
    release = asyncio.Event()

    async def fetch() -> Token:
        nonlocal fetches
        fetches += 1
        await release.wait()
        return _token(clock.now, 300)

    tasks = [asyncio.create_task(cache.get(KEY, fetch)) for _ in range(50)]
    await asyncio.sleep(0)
    release.set()
    tokens = await asyncio.gather(*tasks)
    assert fetches == 1
    assert all(t is tokens[0] for t in tokens)


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    release = asyncio.Event()

    async def failing() -> Token:
        await release.wait()
        raise RuntimeError("token service down")

    tasks = [asyncio.create_task(cache.get(KEY, failing)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)

    async def working() -> Token:
        return _token(clock.now, 300)

    assert (await cache.get(KEY, working)).header == "Bearer t"


async def test_cancelled_leader_lets_a_waiter_fetch() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    started = asyncio.Event()

    async def hanging() -> Token:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def working() -> Token:
        return _token(clock.now, 300, "w")

    leader = asyncio.create_task(cache.get(KEY, hanging))
    await started.wait()
    waiter = asyncio.create_task(cache.get(KEY, working))
    await asyncio.sleep(0)
    leader.cancel()
    assert (await waiter).header == "Bearer w"


async def test_invalidate_only_drops_the_token_it_was_given() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    tokens = iter([_token(clock.now, 300, "old"), _token(clock.now, 300, "new")])

    async def fetch() -> Token:
        return next(tokens)

    old = await cache.get(KEY, fetch)
    cache.invalidate(KEY, old)
    new = await cache.get(KEY, fetch)
    cache.invalidate(KEY, old)  # a late invalidation of the old token keeps the new one
    assert cache.fresh(KEY) is new
    assert cache.fresh(KEY._replace(service="x")) is None


def test_renew_margin_bounds() -> None:
    assert renew_margin(60) == pytest.approx(6.0)
    assert renew_margin(300) == pytest.approx(30.0)
    assert renew_margin(43200) == 60.0
    assert timedelta(seconds=renew_margin(3600)) <= timedelta(minutes=1)
