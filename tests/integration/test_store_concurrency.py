"""Several instances on one store, racing for real: one `Store` per instance (its own engines and
connections, as in separate processes), each in its own thread, released together by a barrier.

On PostgreSQL (REGWATCH_TEST_STORE=postgres) the writes really run at the same time, and what keeps
them apart is the database: ON CONFLICT, row locks and `FOR UPDATE SKIP LOCKED`. On SQLite the
file's write lock serialises them (`BEGIN IMMEDIATE`, waiting up to the busy timeout).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

import pytest
from sqlalchemy import text
from store_support import Clock

from regwatch.errors import StoreError
from regwatch.store import TAG_ADDED, StagedTag, Store, open_store
from regwatch.store import scans as scans_module

T = TypeVar("T")
LEASE = timedelta(seconds=30)
INSTANCES = 4


@pytest.fixture
def instances(store_url: str, clock: Clock) -> Iterator[list[Store]]:
    stores = [open_store(store_url, clock=clock) for _ in range(INSTANCES)]
    stores[0].ensure_account("hub", "reg.example")
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def race(stores: list[Store], action: Callable[[int, Store], T]) -> list[T]:
    """Run `action(i, store)` in one thread per store, all released at the same moment."""
    barrier = threading.Barrier(len(stores))

    def run(i: int) -> T:
        barrier.wait(timeout=30)
        return action(i, stores[i])

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(run, range(len(stores))))


def push(store: Store, repo: str, *tags: str) -> None:
    started = store.begin_repository_scan("hub", repo)
    staged = [StagedTag.seen(t) for t in store.known_tags("hub", repo)]
    staged += [StagedTag(t, digest=f"sha256:{t}", event=TAG_ADDED) for t in tags]
    store.stage_tags(started, staged)
    store.finish_repository_scan(started, sinks=("echo",))


def test_exactly_one_instance_takes_a_free_lease(instances: list[Store]) -> None:
    for round_ in range(15):
        name = f"scan:hub/{round_}"
        won = race(instances, lambda i, s, name=name: s.acquire_lease(name, f"i{i}", LEASE))
        assert won.count(True) == 1, won
        assert instances[0].lease_holder(name) == f"i{won.index(True)}"


def test_exactly_one_instance_takes_over_an_expired_lease(
    instances: list[Store], clock: Clock
) -> None:
    for round_ in range(10):
        name = f"scan:hub/{round_}"
        assert instances[0].acquire_lease(name, "crashed", LEASE)
        clock.now += LEASE  # expired for everyone
        won = race(instances, lambda i, s, name=name: s.acquire_lease(name, f"i{i}", LEASE))
        assert won.count(True) == 1, won
        assert instances[1].lease_holder(name) == f"i{won.index(True)}"


def test_racing_claims_hand_out_each_delivery_exactly_once(instances: list[Store]) -> None:
    """Claim in rounds, all instances at once; each claimed delivery is completed. Every
    delivery must be claimed once, and within a repository only after the earlier one was
    delivered."""
    for r in range(12):
        push(instances[0], f"repo{r}", "1", "2", "3")
    claims: list[tuple[int, str, str]] = []
    delivered: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def claim_and_deliver(i: int, store: Store) -> int:
        claimed = store.claim_deliveries(f"i{i}", lease=LEASE, limit=3)
        with lock:
            for d in claimed:
                earlier = {(d.event.repository, str(n)) for n in range(1, int(d.event.tag))}
                assert earlier <= delivered, f"{d.event.repository}:{d.event.tag} too early"
                claims.append((d.id, d.event.repository, d.event.tag))
        for d in claimed:
            assert store.complete_delivery(d.id, f"i{i}")
            with lock:
                delivered.add((d.event.repository, d.event.tag))
        return len(claimed)

    for _ in range(40):
        if sum(race(instances, claim_and_deliver)) == 0:
            break
    repeated = [cid for cid, n in Counter(cid for cid, _, _ in claims).items() if n > 1]
    assert repeated == []
    assert len(claims) == 36
    assert len(delivered) == 36


def test_a_claim_skips_rows_another_instance_has_locked(instances: list[Store]) -> None:
    """PostgreSQL: a claim passes over deliveries locked by another transaction (SKIP LOCKED)
    instead of waiting. SQLite: one writer — the claim waits until the other transaction ends."""
    push(instances[0], "app", "1")
    push(instances[0], "db", "1")
    holder, claimer = instances[0], instances[1]
    outcome: list[list[str]] = []
    with holder.engines.writer.connect() as conn, conn.begin():
        if holder.is_sqlite:
            conn.execute(text("UPDATE accounts SET catalog_error = NULL"))  # takes the lock
        else:
            conn.execute(text("SELECT id FROM deliveries WHERE repository = 'app' FOR UPDATE"))
        worker = threading.Thread(
            target=lambda: outcome.append(
                [d.event.repository for d in claimer.claim_deliveries("i1", lease=LEASE)]
            )
        )
        started = time.monotonic()
        worker.start()
        worker.join(timeout=1.0 if holder.is_sqlite else 10)
        if holder.is_sqlite:
            assert worker.is_alive()  # waiting for the write lock
        else:
            assert not worker.is_alive()
            assert time.monotonic() - started < 2
            assert outcome == [["db"]]  # app was locked: skipped, not waited for
    worker.join(timeout=10)
    if holder.is_sqlite:
        assert outcome == [["app", "db"]]
    else:
        assert [d.event.repository for d in holder.claim_deliveries("i0", lease=LEASE)] == ["app"]


def test_instances_registering_accounts_at_once_all_succeed(instances: list[Store]) -> None:
    """Every instance calls ensure_account at start-up: the same account from all of them, and
    different new accounts at the same time (each account gets its own key)."""
    race(instances, lambda i, s: s.ensure_account("shared", "reg.example"))
    race(instances, lambda i, s: s.ensure_account(f"own{i}", "reg.example"))
    store = instances[0]
    assert store.accounts() == ["hub", "own0", "own1", "own2", "own3", "shared"]
    with store.engines.reader.connect() as conn:
        keys = conn.execute(text("SELECT key FROM accounts")).scalars().all()
    assert len(set(keys)) == 6


def test_racing_scans_of_a_new_repository_supersede_each_other(instances: list[Store]) -> None:
    """Two instances start scanning a repository no one has seen yet: both starts succeed, only
    the last one to start may finish."""
    scans = race(instances[:2], lambda i, s: s.begin_repository_scan("hub", "brand/new"))
    last = scans[0] if _started_last(instances[0], scans[0]) else scans[1]
    first = scans[1] if last is scans[0] else scans[0]
    with pytest.raises(StoreError, match="superseded"):
        instances[0].finish_repository_scan(first)
    instances[0].stage_tags(last, [StagedTag("1.0")])
    assert instances[0].finish_repository_scan(last).tags == 1


def _started_last(store: Store, scan: object) -> bool:
    repo = store.repository("hub", "brand/new")
    assert repo is not None
    with store.engines.reader.connect() as conn:
        current = conn.execute(
            text("SELECT scan_id FROM repositories WHERE name = 'brand/new'")
        ).scalar_one()
    return bool(current == scan.scan_id)  # type: ignore[attr-defined]


def test_readers_see_events_in_commit_order(instances: list[Store]) -> None:
    """An event reader that remembers the last `seq` it saw must never miss one: an event with a
    lower seq may not become visible after one with a higher seq. Instance 0 merges a scan with
    an event and has not committed yet; instance 1 merges one of another account meanwhile
    (scans of one account are serialised by the account's row lock anyway)."""
    first, second = instances[0], instances[1]
    second.ensure_account("other", "reg.example")
    slow = first.begin_repository_scan("hub", "slow")
    first.stage_tags(slow, [StagedTag("1", digest="sha256:1", event=TAG_ADDED)])
    fast = second.begin_repository_scan("other", "fast")
    second.stage_tags(fast, [StagedTag("1", digest="sha256:2", event=TAG_ADDED)])
    seen_meanwhile: list[list[str]] = []
    with first.engines.writer.connect() as conn, conn.begin():
        scans_module.finish_repository_scan(conn, slow, 0, ["echo"])  # not committed yet
        worker = threading.Thread(target=lambda: second.finish_repository_scan(fast))
        worker.start()
        worker.join(timeout=1.0)
        seen_meanwhile.append([e.repository for e in second.events()])
    worker.join(timeout=15)
    assert not worker.is_alive()
    assert seen_meanwhile == [[]]  # "fast" waited: it would have overtaken "slow"
    assert [e.repository for e in first.events()] == ["slow", "fast"]
