"""Pruning the outbox (store/prune.py, the outbox worker's periodic prune): finished deliveries
and delivery-less events older than the retention go; pending ones, recent ones, the newest event
and the tag history stay. Both stores."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from store_support import T0, Clock

from harness.webhook_receiver import WebhookReceiver
from regwatch.config.settings import parse_settings
from regwatch.events.outbox import OutboxWorker
from regwatch.store import AsyncStore, StagedTag, Store, open_store
from regwatch.store.prune import Pruned

DAY = timedelta(days=1)
LEASE = timedelta(seconds=30)
DIGEST = "sha256:" + "d" * 64


def push(store: Store, tag: str, sinks: tuple[str, ...] = ("ci",), repo: str = "app") -> int:
    """Record a pushed tag with one pending delivery per sink; its event's seq."""
    outcome = store.record_push(
        "hub", "reg.example", repo, StagedTag(tag, digest=DIGEST, metadata=False),
        track_digests=False, sinks=sinks,
    )  # fmt: skip
    assert outcome.event_id is not None
    view = store.find_event(outcome.event_id)
    assert view is not None
    return view.event.seq


def deliver_all(store: Store) -> None:
    """Complete every due delivery (each repository's in order)."""
    while claimed := store.claim_next_deliveries("w", lease=LEASE, limit=100):
        for delivery in claimed:
            assert store.complete_delivery(delivery.id, "w")


def deliver_all_but(store: Store, *, keep_pending: str) -> None:
    for delivery in store.claim_next_deliveries("w", lease=LEASE, limit=100):
        if delivery.event.tag == keep_pending:
            assert store.defer_delivery(delivery.id, "w", T0 + 365 * DAY, "later")
        else:
            assert store.complete_delivery(delivery.id, "w")


def statuses(store: Store) -> dict[str, list[str]]:
    """tag -> statuses of its event's deliveries, for the events still stored."""
    views = store.recent_events(limit=1000)
    return {v.event.tag: sorted(d.status for d in v.deliveries) for v in views}


def test_finished_deliveries_and_their_events_go_after_the_retention(
    store: Store, clock: Clock
) -> None:
    push(store, "old-delivered")
    push(store, "old-pending", repo="other")  # its delivery is never completed
    deliver_all_but(store, keep_pending="old-pending")
    clock.now = T0 + 10 * DAY
    push(store, "recent")
    deliver_all(store)
    push(store, "newest", repo="third")  # pending
    clock.now = T0 + 40 * DAY
    pruned = store.prune_outbox(T0 + 5 * DAY)
    assert (pruned.deliveries, pruned.events) == (1, 1)
    assert statuses(store) == {
        "old-pending": ["pending"],  # never pruned, whatever its age
        "recent": ["delivered"],  # finished after the cutoff
        "newest": ["pending"],
    }
    assert not pruned.full(1000)
    assert store.prune_outbox(T0 + 5 * DAY) == Pruned(deliveries=0, events=0)


def test_skipped_and_dead_lettered_deliveries_go_by_when_they_finished(
    store: Store, clock: Clock
) -> None:
    push(store, "v1", sinks=("ci", "echo"))
    (ci, echo) = sorted(store.claim_next_deliveries("w", lease=LEASE), key=lambda d: d.sink)
    assert store.skip_delivery(ci.id, "w", "no trigger matches")
    clock.now = T0 + 3 * DAY
    assert store.fail_delivery(echo.id, "w", "HTTP 410", retry_at=None)  # dead-lettered now
    push(store, "v2", repo="other")  # the newest event, kept anyway
    view = store.recent_events(limit=10)[-1]
    dead = next(d for d in view.deliveries if d.sink == "echo")
    assert (dead.status, dead.delivered_at) == ("dead", T0 + 3 * DAY)
    pruned = store.prune_outbox(T0 + 2 * DAY)  # the skip is older, the dead letter is not
    assert (pruned.deliveries, pruned.events) == (1, 0)
    assert statuses(store)["v1"] == ["dead"]
    pruned = store.prune_outbox(T0 + 4 * DAY)
    assert (pruned.deliveries, pruned.events) == (1, 1)
    assert list(statuses(store)) == ["v2"]


def test_the_newest_event_and_the_tag_history_are_kept(store: Store, clock: Clock) -> None:
    first = push(store, "v1")
    last = push(store, "v2")
    deliver_all(store)
    clock.now = T0 + 100 * DAY
    pruned = store.prune_outbox(T0 + 50 * DAY)
    assert (pruned.deliveries, pruned.events) == (1, 1)  # v2's delivery is the newest row too
    assert [e.seq for e in store.events()] == [last]
    assert store.find_event(str(first)) is None
    history = store.tag_history("hub", "app")
    assert sorted((h.tag, h.kind) for h in history) == [("v1", "added"), ("v2", "added")]
    assert push(store, "v3") > last  # sequence numbers never go back


def test_a_prune_deletes_at_most_limit_rows_per_call(store: Store, clock: Clock) -> None:
    for i in range(5):
        push(store, f"v{i}", repo=f"r{i}")
    deliver_all(store)
    push(store, "newest", repo="last")
    clock.now = T0 + 60 * DAY
    first = store.prune_outbox(T0 + 30 * DAY, limit=3)
    assert (first.deliveries, first.events, first.full(3)) == (3, 3, True)
    second = store.prune_outbox(T0 + 30 * DAY, limit=3)
    assert (second.deliveries, second.events, second.full(3)) == (2, 2, False)
    assert list(statuses(store)) == ["newest"]


async def test_the_outbox_worker_prunes_by_the_configured_retention(
    store_url: str, clock: Clock
) -> None:
    with open_store(store_url, clock=clock) as store:
        push(store, "old", repo="a")
        deliver_all(store)
        clock.now = T0 + 5 * DAY
        push(store, "recent", repo="b")
        deliver_all(store)
        push(store, "pending", repo="c")
    receiver = WebhookReceiver().start()
    astore = AsyncStore(open_store(store_url, clock=clock))
    hooks = [{"name": "other", "url": receiver.url}]  # the stored deliveries' sink "ci" is gone
    settings = parse_settings({"webhooks": hooks, "eventRetentionDays": 3}, environ={})
    worker = OutboxWorker(
        astore, lambda: settings, holder="w1", poll_interval=0.05, clock=lambda: T0 + 7 * DAY
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(200):
            if "old" not in statuses(astore.store) and worker.dispatching:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await astore.aclose()
        receiver.stop()
    with open_store(store_url) as store:
        assert statuses(store) == {"recent": ["delivered"], "pending": ["skipped"]}
