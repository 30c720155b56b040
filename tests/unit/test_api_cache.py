"""The response cache (regwatch.api.cache): TTL, LRU within a byte budget, off at 0, invalidated
by the store writes of this process (per account generation)."""

from __future__ import annotations

from pathlib import Path

from regwatch.api.cache import IndexWrites, ResponseCache, observe_writes, written_account
from regwatch.store import AsyncStore, Store, open_store


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


def test_a_write_to_the_account_invalidates_its_entries_only() -> None:
    cache = ResponseCache(60.0, clock=Clock())
    cache.put("a1", b"[1]", account="a")
    cache.put("b1", b"[2]", account="b")
    cache.invalidate("a")
    assert cache.get("a1") is None
    assert cache.get("b1") == b"[2]"
    cache.invalidate()  # any account may have changed
    assert cache.get("b1") is None


def test_an_answer_read_before_a_write_is_not_kept() -> None:
    cache = ResponseCache(60.0, clock=Clock())
    generation = cache.generation("a")  # read before the store is
    cache.invalidate("a")  # a scan commits while the answer is being built
    cache.put("k", b"[old]", account="a", generation=generation)
    assert cache.get("k") is None
    cache.put("k", b"[new]", account="a", generation=cache.generation("a"))
    assert cache.get("k") == b"[new]"


def test_written_account_of_store_calls() -> None:
    class Scan:
        account = "c"

    assert written_account(("a", "registry"), {}) == "a"
    assert written_account((), {"account": "b"}) == "b"
    assert written_account((Scan(),), {}) == "c"
    assert written_account((42,), {}) is None


async def test_writes_through_the_service_store_invalidate(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    astore = AsyncStore(store)
    cache = ResponseCache(60.0)
    observe_writes(astore, IndexWrites(cache))
    try:
        await astore.call(Store.ensure_account, "a", "registry.example")
        cache.put("tags", b"[]", account="a")
        cache.put("other", b"[]", account="b")
        assert await astore.call(Store.accounts) == ["a"]  # reads leave the cache alone
        assert cache.get("tags") == b"[]"
        await astore.call(Store.replace_repositories, "a", ["r"])
        assert cache.get("tags") is None
        assert cache.get("other") == b"[]"
        run = await astore.call(Store.start_run, "a")  # scan bookkeeping: no lookup changes
        cache.put("tags", b"[]", account="a")
        await astore.call(Store.finish_run, run, requests=1, repositories_ok=1,
                          repositories_failed=0, status="ok", errors=[])  # fmt: skip
        assert cache.get("tags") == b"[]"
        await astore.call(Store.begin_repository_scans, "a", ["r"])  # claims change no answer
        assert cache.get("tags") == b"[]"
        await astore.call(Store.delete_account, "a")
        assert cache.get("tags") is None
    finally:
        await astore.aclose()


def test_an_expired_entry_with_a_validator_is_renewed_while_it_matches() -> None:
    clock = Clock()
    cache = ResponseCache(1.0, max_age=10.0, clock=clock)
    cache.put("k", b"[1]", account="a", validator=(5, 1))
    clock.now += 1.5
    assert cache.get("k") is None  # get: fresh entries only
    found = cache.lookup("k")
    assert found is not None
    assert not found.fresh
    assert found.validator == (5, 1)
    assert cache.renew("k", (5, 1))
    assert cache.get("k") == b"[1]"  # fresh for another ttl
    assert cache.revalidated == 1
    clock.now += 1.5
    assert cache.renew("k", (6, 2)) is False  # the repository moved: dropped, recompute
    assert cache.lookup("k") is None
    assert len(cache) == 0


def test_revalidation_ends_at_max_age_without_a_validator_or_after_a_write() -> None:
    clock = Clock()
    cache = ResponseCache(1.0, max_age=3.0, clock=clock)
    cache.put("old", b"[1]", validator=(1, 1))
    cache.put("plain", b"[2]")
    clock.now += 1.5
    assert cache.lookup("plain") is None  # no validator: an expired entry is a miss
    assert cache.renew("old", (1, 1))
    clock.now += 2.0  # born 3.5 s ago, past max_age although the validator still matches
    assert cache.lookup("old") is None
    cache.put("a1", b"[3]", account="a", validator=(1, 1))
    cache.invalidate("a")
    clock.now += 1.5
    assert cache.lookup("a1") is None  # this process's write: never revalidated
    assert cache.renew("a1", (1, 1)) is False
