"""The one-transaction merge of a repository listed in one page (store/merge.py) against the
staged merge (store/scans.py): same index, history, events and outcome for the same listing;
plus its own rules (push hand-off, superseded scans, rollback) and the group commit of writes
(Store.write_batch, AsyncStore). On SQLite, or PostgreSQL with REGWATCH_TEST_STORE=postgres."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from store_support import assert_search_index_exact

from regwatch.errors import StoreError
from regwatch.store import DIGEST_CHANGED, TAG_ADDED, ScanOutcome, StagedTag, Store, open_store
from regwatch.store import merge as merge_module
from regwatch.store.schema import scan_staging

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SINKS = ("echo", "hook")
_repositories = itertools.count()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self) -> None:
        self.now += timedelta(minutes=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[Store]:
    with open_store(store_url, clock=clock) as opened:
        opened.ensure_account("hub", "reg.example:5000")
        yield opened
        assert_search_index_exact(opened)


def scan(store: Store, repo: str, listing: Sequence[StagedTag], *, staged: bool) -> ScanOutcome:
    """One complete scan: through the staging table, or handed over as the last page."""
    started = store.begin_repository_scan("hub", repo)
    if staged:
        store.stage_tags(started, listing)
        return store.finish_repository_scan(started, sinks=SINKS)
    return store.finish_repository_scan(started, sinks=SINKS, last_page=listing)


def state(store: Store, repo: str) -> dict[str, Any]:
    """Everything a scan may change in one repository, without generated ids."""
    images = store.find_images(account="hub", repository=repo)
    events = [e for e in store.events(limit=10_000) if e.repository == repo]
    repository = store.repository("hub", repo)
    assert repository is not None
    return {
        "images": sorted(
            (
                i.tag,
                i.digest,
                i.index_digest,
                dict(i.platform_digests),
                i.created,
                dict(i.labels),
                i.first_seen,
                i.last_seen,
                i.last_changed,
            )
            for i in images
        ),
        "history": sorted(
            (h.tag, h.kind, h.digest, h.previous_digest, h.at)
            for h in store.tag_history("hub", repo)
        ),
        "events": [(e.kind, e.tag, e.digest, e.previous_digest, e.created_at) for e in events],
        "repository": (
            repository.status,
            repository.tag_count,
            repository.last_ok_at,
            repository.changed_at,
            repository.last_error,
        ),
        "tags by date": store.tags("hub", repo, "date"),
        "tags by semver": store.tags("hub", repo, "semver"),
        "found": sorted(i.tag for i in store.find_images(f"reg.example:5000/{repo}:")),
    }


NAMES = st.sampled_from(["1.0", "1.1", "2.0.0-rc.1", "latest", "v3", "main"])
DIGESTS = st.sampled_from(["sha256:a", "sha256:b", "sha256:c"])


@st.composite
def listed(draw: st.DrawFn, names: list[str]) -> list[StagedTag]:
    """A listing of `names` (no duplicates): seen only, or with (possibly new) metadata and an
    event asked for, as the indexer may stage them."""
    items = []
    for name in names:
        if draw(st.booleans()):
            items.append(StagedTag.seen(name, event=draw(st.sampled_from([None, TAG_ADDED]))))
            continue
        created = draw(st.sampled_from([None, T0 - timedelta(days=3)]))
        items.append(
            StagedTag(
                name,
                digest=draw(st.none() | DIGESTS),
                index_digest=draw(st.none() | DIGESTS),
                platform_digests=draw(st.sampled_from([{}, {"linux/amd64": "sha256:p"}])),
                created=created,
                labels=draw(st.sampled_from([{}, {"commitId": "c1"}])),
                event=draw(st.sampled_from([None, TAG_ADDED, DIGEST_CHANGED])),
            )
        )
    return items


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_merging_the_last_page_matches_the_staged_merge(
    store: Store, clock: Clock, data: st.DataObject
) -> None:
    first_names = data.draw(st.lists(NAMES, unique=True, max_size=5), label="first")
    second_names = data.draw(st.lists(NAMES, unique=True, max_size=6), label="second")
    first = data.draw(listed(first_names), label="first scan")
    second = data.draw(listed(second_names), label="second scan")
    n = next(_repositories)
    results = {}
    for staged in (True, False):
        clock.now = T0
        repo = f"team/app{n}-{'staged' if staged else 'direct'}"
        store.replace_repositories("hub", [*(r.name for r in store.repositories("hub")), repo])
        outcomes = [scan(store, repo, first, staged=staged)]
        clock.advance()
        outcomes.append(scan(store, repo, second, staged=staged))
        results[staged] = (outcomes, state(store, repo))
    assert results[False] == results[True]


def test_a_tag_listed_twice_keeps_the_later_data_and_its_first_place(store: Store) -> None:
    store.replace_repositories("hub", ["app"])
    scan(store, "app", [StagedTag("x", digest="sha256:0")], staged=False)
    listing = [
        StagedTag("a", digest="sha256:1", event=TAG_ADDED),
        StagedTag("b", digest="sha256:2", event=TAG_ADDED),
        StagedTag("a", digest="sha256:3", event=TAG_ADDED),
    ]
    outcome = scan(store, "app", listing, staged=False)
    assert (outcome.added, outcome.removed, outcome.tags, outcome.events) == (2, 1, 2, 2)
    assert store.known_tags("hub", "app") == {"a": "sha256:3", "b": "sha256:2"}
    assert [(e.tag, e.digest) for e in store.events()] == [("a", "sha256:3"), ("b", "sha256:2")]


def test_a_push_during_a_scan_is_kept_and_announced_once(store: Store) -> None:
    store.replace_repositories("hub", ["app"])
    scan(store, "app", [StagedTag("old", digest="sha256:1")], staged=False)
    running = store.begin_repository_scan("hub", "app")
    pushed = [
        store.record_push("hub", "reg.example:5000", "app",
                          StagedTag(tag, digest="sha256:2", metadata=False),
                          track_digests=True, sinks=SINKS)
        for tag in ("new", "later")
    ]  # fmt: skip
    # the listing saw "new" (and would announce it), not "later" (pushed after it)
    listing = [StagedTag.seen("old"), StagedTag("new", digest="sha256:2", event=TAG_ADDED)]
    outcome = store.finish_repository_scan(running, sinks=SINKS, last_page=listing)
    assert (outcome.removed, outcome.events, outcome.tags) == (0, 0, 3)
    assert store.tags("hub", "app") == ["later", "new", "old"]
    assert [e.id for e in store.events()] == [p.event_id for p in pushed]
    again = store.begin_repository_scan("hub", "app")  # the hand-off rows are gone
    outcome = store.finish_repository_scan(again, last_page=[StagedTag.seen("old")])
    assert (outcome.removed, outcome.tags) == (2, 1)


def test_a_superseded_scan_cannot_finish_its_last_page(store: Store) -> None:
    store.replace_repositories("hub", ["app"])
    first = store.begin_repository_scan("hub", "app")
    second = store.begin_repository_scan("hub", "app")
    with pytest.raises(StoreError, match="superseded"):
        store.finish_repository_scan(first, last_page=[StagedTag("a")])
    store.finish_repository_scan(second, last_page=[StagedTag("b")])
    assert store.tags("hub", "app") == ["b"]
    store.delete_account("hub")
    with pytest.raises(StoreError, match="'hub' is not in the store"):
        store.finish_repository_scan(second, last_page=[StagedTag("b")])


def test_a_failure_inside_the_merge_changes_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.replace_repositories("hub", ["app"])
    scan(store, "app", [StagedTag("keep", digest="sha256:a"), StagedTag("gone")], staged=False)
    started = store.begin_repository_scan("hub", "app")
    listing = [
        StagedTag("keep", digest="sha256:b", event=DIGEST_CHANGED),
        StagedTag("new", event=TAG_ADDED),
    ]

    def crash(*_args: object) -> None:  # after the tags were written, before the events
        raise RuntimeError("disk full")

    monkeypatch.setattr(merge_module, "_write_events", crash)
    with pytest.raises(RuntimeError):
        store.finish_repository_scan(started, sinks=SINKS, last_page=listing)
    assert store.known_tags("hub", "app") == {"keep": "sha256:a", "gone": None}
    assert [h.kind for h in store.tag_history("hub", "app")] == ["added", "added"]
    assert store.find_images("app:new") == []
    monkeypatch.undo()
    outcome = store.finish_repository_scan(started, sinks=SINKS, last_page=listing)
    assert (outcome.added, outcome.changed, outcome.removed, outcome.events) == (1, 1, 1, 2)


def test_a_last_page_larger_than_one_insert_statement(store: Store) -> None:
    store.replace_repositories("hub", ["big"])
    names = [f"t{i:05d}" for i in range(1234)]
    outcome = scan(store, "big", [StagedTag(n, digest="sha256:1") for n in names], staged=False)
    assert (outcome.added, outcome.tags) == (1234, 1234)
    assert store.tags("hub", "big") == names
    assert len(store.tag_history("hub", "big")) == 1234
    assert [i.tag for i in store.find_images("big:t01233")] == ["t01233"]
    moved = [StagedTag(n, digest="sha256:2") for n in names[::2]]
    outcome = scan(store, "big", moved, staged=False)
    assert (outcome.changed, outcome.removed, outcome.tags) == (617, 617, 617)
    assert set(store.known_tags("hub", "big").values()) == {"sha256:2"}


def staging_rows(store: Store) -> int:
    with store.engines.reader.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(scan_staging)).scalar_one())


@pytest.mark.parametrize("staged", [False, True], ids=["direct", "staged"])
def test_rows_left_by_an_abandoned_scan_are_ignored_then_dropped(
    store: Store, staged: bool
) -> None:
    store.replace_repositories("hub", ["app"])
    scan(store, "app", [StagedTag("old"), StagedTag("gone")], staged=False)
    abandoned = store.begin_repository_scan("hub", "app")  # killed after staging a page
    store.stage_tags(abandoned, [StagedTag.seen("old"), StagedTag.seen("gone")])
    outcome = scan(store, "app", [StagedTag.seen("old")], staged=staged)
    assert (outcome.removed, outcome.tags) == (1, 1)  # not kept by the abandoned rows
    assert staging_rows(store) == 0
