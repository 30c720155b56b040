"""Outbox deliveries, leases, AsyncStore and reader/writer concurrency on a real store
(SQLite, or PostgreSQL with REGWATCH_TEST_STORE=postgres)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from store_support import Clock

from regwatch.store import TAG_ADDED, AsyncStore, StagedTag, Store, open_store

LEASE = timedelta(seconds=30)


@pytest.fixture
def store(store: Store) -> Store:
    store.ensure_account("hub", "reg.example")
    return store


def push(store: Store, repo: str, *tags: str, sinks: tuple[str, ...] = ("echo",)) -> None:
    started = store.begin_repository_scan("hub", repo)
    known = store.known_tags("hub", repo)
    staged = [StagedTag.seen(t) for t in known]
    staged += [StagedTag(t, digest=f"sha256:{t}", event=TAG_ADDED) for t in tags]
    store.stage_tags(started, staged)
    store.finish_repository_scan(started, sinks=sinks)


def test_deliveries_of_one_repository_go_out_in_order(store: Store, clock: Clock) -> None:
    push(store, "app", "1", "2")
    push(store, "db", "9")
    first = store.claim_deliveries("i1", lease=LEASE)
    assert [(d.event.repository, d.event.tag, d.attempts) for d in first] == [
        ("app", "1", 1),
        ("db", "9", 1),
    ]  # app:2 waits for app:1
    assert store.claim_deliveries("i2", lease=LEASE) == []  # all leased or blocked
    app1 = first[0]
    assert store.fail_delivery(app1.id, "i1", "502", retry_at=clock.now + timedelta(seconds=10))
    assert store.claim_deliveries("i2", lease=LEASE) == []  # app:1 backs off, app:2 still waits
    clock.now += timedelta(seconds=10)
    again = store.claim_deliveries("i2", lease=LEASE)
    assert [(d.event.tag, d.attempts, d.last_error) for d in again] == [("1", 2, "502")]
    assert not store.complete_delivery(app1.id, "i1")  # i1 lost that lease
    assert store.complete_delivery(app1.id, "i2")
    assert [d.event.tag for d in store.claim_deliveries("i2", lease=LEASE)] == ["2"]


def test_an_expired_lease_is_claimed_again(store: Store, clock: Clock) -> None:
    push(store, "app", "1")
    (claimed,) = store.claim_deliveries("crashed", lease=LEASE)
    clock.now += LEASE
    (reclaimed,) = store.claim_deliveries("alive", lease=LEASE)
    assert (reclaimed.id, reclaimed.attempts) == (claimed.id, 2)


def test_dead_letters_do_not_block_the_repository(store: Store) -> None:
    push(store, "app", "1", "2")
    (first,) = store.claim_deliveries("i", lease=LEASE)
    assert store.fail_delivery(first.id, "i", "410 Gone", retry_at=None)
    (second,) = store.claim_deliveries("i", lease=LEASE)
    assert second.event.tag == "2"


def test_claims_can_be_limited_to_one_sink(store: Store) -> None:
    push(store, "app", "1", sinks=("echo", "hook"))
    claimed = store.claim_deliveries("i", lease=LEASE, sink="hook")
    assert [d.sink for d in claimed] == ["hook"]
    assert store.events(account="hub")[0].id == claimed[0].event.id


def test_leases(store: Store, clock: Clock) -> None:
    name = "scan:hub"
    assert store.acquire_lease(name, "i1", LEASE)
    assert not store.acquire_lease(name, "i2", LEASE)
    assert store.lease_holder(name) == "i1"
    assert store.acquire_lease(name, "i1", LEASE)  # renewal
    clock.now += LEASE
    assert store.lease_holder(name) is None
    assert store.acquire_lease(name, "i2", LEASE)  # expired: taken over
    assert not store.release_lease(name, "i1")
    assert store.release_lease(name, "i2")
    assert store.acquire_lease(name, "i3", LEASE)


def test_reads_do_not_wait_for_a_writer(store: Store) -> None:
    push(store, "app", "1")
    holding = threading.Event()
    release = threading.Event()

    def long_write() -> None:
        with store._write() as conn:  # holds SQLite's write lock
            conn.exec_driver_sql("UPDATE accounts SET catalog_error = 'x'")
            holding.set()
            release.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        assert store.tags("hub", "app") == ["1"]
        status = store.account_status("hub")
        assert time.monotonic() - started < 1.0
        assert status is not None
        assert status.catalog_error is None  # the uncommitted write is not visible
    finally:
        release.set()
        writer.join()


def reading_thread(s: Store) -> str:
    """A read (not marked @writes): which thread runs it."""
    s.counts()
    return threading.current_thread().name


async def test_async_store_routes_reads_and_writes(store: Store) -> None:
    astore = AsyncStore(store)
    # SQLite reads run inline on the event loop; PostgreSQL reads (a round trip) on the read pool
    assert astore.inline_reads is store.is_sqlite
    where = await astore.call(reading_thread)
    if store.is_sqlite:
        assert where == threading.current_thread().name
    else:
        assert where.startswith("regwatch-store-read")
    started = await astore.call(Store.begin_repository_scan, "hub", "app")
    await astore.call(Store.stage_tags, started, [StagedTag("1.0")])
    await astore.call(Store.finish_repository_scan, started)
    assert await astore.call(Store.tags, "hub", "app") == ["1.0"]
    results = await asyncio.gather(*[astore.call(Store.find_images, "app") for _ in range(5)])
    assert all(len(r) == 1 for r in results)
    threaded = AsyncStore(store, inline_reads=False)
    assert await threaded.call(Store.counts) == store.counts()
    await threaded.aclose()
    await astore.aclose()


async def test_async_writes_go_to_the_writer_threads(store_url: str) -> None:
    """SQLite: one writer thread (the single writer); PostgreSQL: a pool of two."""
    store = open_store(store_url)
    astore = AsyncStore(store)
    names: set[str] = set()

    def which(s: Store, account: str) -> None:
        names.add(threading.current_thread().name)
        Store.ensure_account(s, account, "reg.example")

    which.__regwatch_writes__ = True  # type: ignore[attr-defined]
    await asyncio.gather(*[astore.call(which, f"acct{i}") for i in range(8)])
    assert 1 <= len(names) <= (1 if store.is_sqlite else 2)
    assert all(name.startswith("regwatch-store-write") for name in names)
    assert len(store.accounts()) == 8
    await astore.aclose()
