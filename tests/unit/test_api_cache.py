"""The repository micro-cache (regwatch.api.cache): TTL, LRU within a byte budget, off at 0."""

from __future__ import annotations

from regwatch.api.cache import ResponseCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_the_ttl() -> None:
    clock = Clock()
    cache = ResponseCache(1.0, clock=clock)
    cache.put("k", b"[1]")
    clock.now += 0.99
    assert cache.get("k") == b"[1]"
    clock.now += 0.02
    assert cache.get("k") is None
    assert len(cache) == 0
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_least_recently_used_entries_go_when_over_budget() -> None:
    cache = ResponseCache(10.0, max_bytes=10, clock=Clock())
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # a is now the most recently used
    cache.put("c", b"1234")
    assert cache.get("b") is None
    assert cache.get("a") == b"1234"
    assert cache.get("c") == b"1234"
    cache.put("huge", b"x" * 11)  # larger than the whole budget: not kept
    assert cache.get("huge") is None
    cache.put("a", b"12")  # replacing an entry releases its bytes
    cache.put("d", b"1234")
    assert [cache.get(k) for k in ("a", "c", "d")] == [b"12", b"1234", b"1234"]


def test_ttl_zero_turns_it_off() -> None:
    cache = ResponseCache(0.0, clock=Clock())
    assert cache.enabled is False
    cache.put("k", b"[]")
    assert cache.get("k") is None
    assert len(cache) == 0
