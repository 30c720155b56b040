"""The store side of events: single-tag push upserts, skips, rate-cap holds, redelivery, views."""

from __future__ import annotations

from datetime import timedelta

from store_support import T0, Clock

from regwatch.store import DIGEST_CHANGED, TAG_ADDED, StagedTag, Store
from regwatch.store.push import PushOutcome

LEASE = timedelta(seconds=30)
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
SINKS = ("echo", "ci")


def push(
    store: Store, tag: str, digest: str | None, *, track: bool = False, repo: str = "app"
) -> PushOutcome:
    return store.record_push(
        "hub", "reg.example", repo, StagedTag(tag, digest=digest, metadata=False),
        track_digests=track, sinks=SINKS,
    )  # fmt: skip


def scan(store: Store, repo: str, *staged: StagedTag) -> None:
    started = store.begin_repository_scan("hub", repo)
    store.stage_tags(started, list(staged))
    store.finish_repository_scan(started, sinks=SINKS)


def test_a_pushed_tag_is_indexed_with_its_event_and_a_delivery_per_sink(store: Store) -> None:
    outcome = push(store, "v1", D1)  # the account is not in the store yet: created
    assert outcome.change == "added"
    image = store.get_image("hub", "app", "v1")
    assert image is not None
    assert (image.registry, image.digest) == ("reg.example", D1)
    assert store.find_images("reg.example/app:v1")[0].tag == "v1"  # searchable
    (event,) = store.events()
    assert (event.id, event.kind, event.tag, event.digest) == (
        outcome.event_id,
        TAG_ADDED,
        "v1",
        D1,
    )
    claimed = store.claim_deliveries("w", lease=LEASE)
    assert sorted(d.sink for d in claimed) == sorted(SINKS)
    state = store.repository("hub", "app")
    assert state is not None
    assert state.tag_count == 1
    assert [h.kind for h in store.tag_history("hub", "app", "v1")] == ["added"]


def test_a_repeated_notification_changes_nothing(store: Store) -> None:
    push(store, "v1", D1)
    again = push(store, "v1", D1)
    assert (again.change, again.event_id) == ("unchanged", None)
    assert len(store.events()) == 1


def test_other_tags_of_the_repository_are_left_alone(store: Store) -> None:
    store.ensure_account("hub", "reg.example")
    scan(store, "app", StagedTag("a", digest=D1), StagedTag("b", digest=D2))
    push(store, "c", D1)
    assert store.tags("hub", "app") == ["a", "b", "c"]
    state = store.repository("hub", "app")
    assert state is not None
    assert state.tag_count == 3


def test_a_moved_tag_fires_only_with_track_digests(store: Store) -> None:
    push(store, "latest", D1)
    quiet = push(store, "latest", D2)
    assert (quiet.change, quiet.event_id, quiet.previous_digest) == ("changed", None, D1)
    image = store.get_image("hub", "app", "latest")
    assert image is not None
    assert image.digest == D2  # the index follows the registry either way
    loud = push(store, "latest", D1, track=True)
    assert loud.change == "changed"
    kinds = [(e.kind, e.digest, e.previous_digest) for e in store.events()]
    assert kinds == [(TAG_ADDED, D1, None), (DIGEST_CHANGED, D1, D2)]


def test_a_digest_filled_in_for_a_tag_without_one_is_silent(store: Store) -> None:
    store.ensure_account("hub", "reg.example")
    scan(store, "app", StagedTag.seen("v1"))  # indexed without digest (tracking off)
    filled = push(store, "v1", D1, track=True)
    assert (filled.change, filled.event_id) == ("filled", None)
    assert store.known_tags("hub", "app") == {"v1": D1}
    assert store.events() == []


def test_a_push_during_a_scan_is_neither_lost_nor_announced_twice(store: Store) -> None:
    store.ensure_account("hub", "reg.example")
    scan(store, "app", StagedTag("old", digest=D1))
    running = store.begin_repository_scan("hub", "app")
    # the scan listed "old" and "new" (new, so it will announce it) before the push arrived
    store.stage_tags(running, [StagedTag.seen("old"), StagedTag("new", digest=D2, event=TAG_ADDED)])
    pushed = push(store, "new", D2)
    later = push(store, "later", D1)  # pushed after the scan's listing
    store.finish_repository_scan(running, sinks=SINKS)
    assert store.tags("hub", "app") == ["later", "new", "old"]  # "later" was not deleted
    assert [e.id for e in store.events()] == [pushed.event_id, later.event_id]


def test_skipped_deliveries_complete_without_blocking_the_repository(store: Store) -> None:
    push(store, "v1", D1)
    push(store, "v2", D1)
    first = {d.sink: d for d in store.claim_deliveries("w", lease=LEASE)}
    assert store.skip_delivery(first["ci"].id, "w", "no trigger of sink 'ci' matches hub/app:v1")
    assert not store.skip_delivery(first["ci"].id, "other", "x")  # only the lease holder
    nxt = store.claim_deliveries("w", lease=LEASE)
    assert [(d.sink, d.event.tag) for d in nxt] == [("ci", "v2")]  # echo:v2 waits for echo:v1
    view = store.find_event(first["ci"].event.id)
    assert view is not None
    ci = next(d for d in view.deliveries if d.sink == "ci")
    assert (ci.status, ci.last_error) == ("skipped", "no trigger of sink 'ci' matches hub/app:v1")
    assert ci.delivered_at == T0


def test_a_held_delivery_waits_without_counting_an_attempt(store: Store, clock: Clock) -> None:
    push(store, "v1", D1)
    (echo,) = store.claim_deliveries("w", lease=LEASE, sink="echo")
    assert echo.attempts == 1
    until = T0 + timedelta(seconds=20)
    assert store.defer_delivery(echo.id, "w", until, "held by the rate cap")
    assert store.next_delivery_due() == T0  # the ci delivery is due now
    assert store.claim_deliveries("w", lease=LEASE, sink="echo") == []
    clock.now = until
    (again,) = store.claim_deliveries("w", lease=LEASE, sink="echo")
    assert (again.id, again.attempts, again.last_error) == (echo.id, 1, "held by the rate cap")


def test_next_due_ignores_deliveries_waiting_behind_others(store: Store, clock: Clock) -> None:
    assert store.next_delivery_due() is None
    push(store, "v1", D1, repo="a")
    push(store, "v2", D1, repo="a")
    claimed = store.claim_deliveries("w", lease=LEASE, limit=10)
    assert len(claimed) == 2  # v1 for both sinks; v2 waits behind them
    assert store.next_delivery_due() == T0 + LEASE  # only a lease expiry can free anything
    for d in claimed:
        assert store.fail_delivery(d.id, "w", "502", retry_at=T0 + timedelta(seconds=5))
    assert store.next_delivery_due() == T0 + timedelta(seconds=5)


def test_redeliver_requeues_and_adds_sinks(store: Store, clock: Clock) -> None:
    push(store, "v1", D1)
    for d in store.claim_deliveries("w", lease=LEASE):
        if d.sink == "echo":
            store.complete_delivery(d.id, "w")
        else:
            store.fail_delivery(d.id, "w", "410 Gone", retry_at=None)
    seq = store.events()[0].seq
    clock.now += timedelta(minutes=5)
    assert store.redeliver(seq, ["echo", "ci", "new"]) == 3
    view = store.find_event(str(seq))
    assert view is not None
    assert {(d.sink, d.status, d.attempts, d.last_error) for d in view.deliveries} == {
        ("echo", "pending", 0, None),
        ("ci", "pending", 0, None),
        ("new", "pending", 0, None),
    }
    assert len(store.claim_deliveries("w", lease=LEASE)) == 3


def test_recent_events_newest_first_with_filters_and_paging(store: Store) -> None:
    for n in range(5):
        push(store, f"v{n}", D1, repo="a" if n % 2 else "b")
    recent = store.recent_events(limit=3)
    assert [v.event.tag for v in recent] == ["v4", "v3", "v2"]
    assert all(len(v.deliveries) == 2 for v in recent)
    older = store.recent_events(limit=3, before_seq=recent[-1].event.seq)
    assert [v.event.tag for v in older] == ["v1", "v0"]
    assert [v.event.tag for v in store.recent_events(repository="a")] == ["v3", "v1"]
    assert store.recent_events(account="nobody") == []
    assert store.find_event("no-such-id") is None


def test_outbox_counts(store: Store) -> None:
    push(store, "v1", D1, repo="a")
    push(store, "v2", D1, repo="b")
    for d in store.claim_deliveries("w", lease=LEASE, sink="ci"):
        store.fail_delivery(d.id, "w", "gone", retry_at=None)
    counts = store.outbox_counts()
    assert counts.by_sink_status == {("echo", "pending"): 2, ("ci", "dead"): 2}
    assert counts.pending_by_account == {("echo", "hub"): 2}
    since = T0 - timedelta(minutes=1)
    assert store.delivered_since("echo", "hub", since) == 0


def test_claim_next_deliveries_hands_out_one_head_per_sink_and_repository(
    store: Store, clock: Clock
) -> None:
    for tag, repo in [("1", "app"), ("2", "app"), ("9", "db")]:
        push(store, tag, D1, repo=repo)
    first = store.claim_next_deliveries("i1", lease=LEASE, limit=10)
    assert sorted((d.sink, d.event.tag, d.attempts) for d in first) == [
        ("ci", "1", 1), ("ci", "9", 1), ("echo", "1", 1), ("echo", "9", 1),
    ]  # fmt: skip
    assert store.claim_next_deliveries("i2", lease=LEASE) == []  # leased, or waiting behind
    app1 = next(d for d in first if (d.sink, d.event.tag) == ("echo", "1"))
    assert store.fail_delivery(app1.id, "i1", "502", retry_at=T0 + timedelta(seconds=10))
    assert store.claim_next_deliveries("i2", lease=LEASE) == []  # echo:2 still waits for echo:1
    ci1 = next(d for d in first if (d.sink, d.event.tag) == ("ci", "1"))
    assert store.complete_delivery(ci1.id, "i1")
    assert [(d.sink, d.event.tag) for d in store.claim_next_deliveries("i2", lease=LEASE)] == [
        ("ci", "2")
    ]
    clock.now += LEASE  # every lease ran out: the ones never completed come back
    again = store.claim_next_deliveries("i3", lease=LEASE, limit=1)
    assert [(d.sink, d.event.tag, d.attempts, d.last_error) for d in again] == [
        ("echo", "1", 2, "502")
    ]
