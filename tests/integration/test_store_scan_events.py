"""A push that lands while a repository scan is open (between its begin and its finish) must not
get a second `tag_added` event from the scan's merge: an added event is never recorded for a tag
that is already in the index at merge time. Both merges: the staged one (a repository listed in
several pages, store/scans.py) and the direct one (one page, store/merge.py). On SQLite, or
PostgreSQL with REGWATCH_TEST_STORE=postgres."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from store_support import assert_search_index_exact

from regwatch.store import (
    DIGEST_CHANGED,
    TAG_ADDED,
    RepositoryScan,
    ScanOutcome,
    StagedTag,
    Store,
    open_store,
)
from regwatch.store.schema import repositories

REGISTRY = "reg.example:5000"
SINKS = ("hook",)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url, clock=lambda: datetime(2024, 5, 1, tzinfo=UTC)) as opened:
        opened.ensure_account("hub", REGISTRY)
        opened.replace_repositories("hub", ["app"])
        baseline = opened.begin_repository_scan("hub", "app")  # the silent first scan
        opened.finish_repository_scan(baseline, last_page=[StagedTag.seen("old")])
        yield opened
        assert_search_index_exact(opened)


def push(store: Store, tag: str, digest: str = "sha256:1") -> str | None:
    outcome = store.record_push("hub", REGISTRY, "app",
                                StagedTag(tag, digest=digest, metadata=False),
                                track_digests=True, sinks=SINKS)  # fmt: skip
    return outcome.event_id


def added(tag: str) -> StagedTag:
    """A tag the scan's plan found new (not in the index when it listed the page)."""
    return StagedTag.seen(tag, event=TAG_ADDED)


def added_events(store: Store) -> Counter[str]:
    return Counter(e.tag for e in store.events() if e.kind == TAG_ADDED)


def finish(
    store: Store, scan: RepositoryScan, pages: int, first: list[StagedTag], last: list[StagedTag]
) -> ScanOutcome:
    """Finish `scan` in two pages, `first` staged then `last` (the staged merge), or in one page
    holding both (the direct merge)."""
    if pages == 2:
        store.stage_tags(scan, first)
        return store.finish_repository_scan(scan, sinks=SINKS, last_page=last)
    return store.finish_repository_scan(scan, sinks=SINKS, last_page=first + last)


@pytest.mark.parametrize("staged_first", [True, False], ids=["staged-before", "pushed-before"])
def test_a_push_during_a_multi_page_scan_is_announced_once(
    store: Store, staged_first: bool
) -> None:
    """The pushed tag is in the last page; the first page was staged before or after the push."""
    scan = store.begin_repository_scan("hub", "app")
    if staged_first:
        store.stage_tags(scan, [StagedTag.seen("old"), added("a")])
        pushed = push(store, "b")
    else:
        pushed = push(store, "b")
        store.stage_tags(scan, [StagedTag.seen("old"), added("a")])
    outcome = store.finish_repository_scan(scan, sinks=SINKS, last_page=[added("b")])
    assert added_events(store) == {"a": 1, "b": 1}
    assert [e.id for e in store.events() if e.tag == "b"] == [pushed]
    assert outcome.events == 1  # only a's
    assert store.tags("hub", "app") == ["a", "b", "old"]


def test_a_push_of_a_tag_already_staged_by_the_scan_is_announced_once(store: Store) -> None:
    scan = store.begin_repository_scan("hub", "app")
    store.stage_tags(scan, [StagedTag.seen("old"), added("b")])
    pushed = push(store, "b")
    store.finish_repository_scan(scan, sinks=SINKS, last_page=[added("c")])
    assert added_events(store) == {"b": 1, "c": 1}
    assert [e.id for e in store.events() if e.tag == "b"] == [pushed]


def set_claim(store: Store, scan_id: str | None) -> None:
    with store.engines.writer.begin() as conn:
        conn.execute(update(repositories).values(scan_id=scan_id))


def unseen_push(
    store: Store, scan: RepositoryScan, tag: str, digest: str = "sha256:1"
) -> str | None:
    """A push that did not see the scan's claim: on PostgreSQL a push transaction that read the
    repository before the scan's begin committed, and committed after the scan read its known
    tags. It leaves no hand-off in the staging table: only the index tells the merge."""
    set_claim(store, None)
    try:
        return push(store, tag, digest)
    finally:
        set_claim(store, scan.scan_id)


@pytest.mark.parametrize("pages", [1, 2], ids=["direct", "staged"])
def test_no_added_event_for_a_tag_already_indexed_at_merge_time(store: Store, pages: int) -> None:
    scan = store.begin_repository_scan("hub", "app")
    pushed = unseen_push(store, scan, "b")
    outcome = finish(store, scan, pages, [StagedTag.seen("old")], [added("b")])
    assert added_events(store) == {"b": 1}
    assert [e.id for e in store.events()] == [pushed]
    assert outcome.events == 0
    assert store.tags("hub", "app") == ["b", "old"]


@pytest.mark.parametrize("pages", [1, 2], ids=["direct", "staged"])
def test_a_scan_still_announces_what_the_index_did_not_have(store: Store, pages: int) -> None:
    """The rule only drops added events for indexed tags: new tags and moved digests are still
    announced (and a digest change of an indexed tag is not an added event)."""
    first = store.begin_repository_scan("hub", "app")
    store.finish_repository_scan(first, last_page=[StagedTag("old", digest="sha256:1")])
    scan = store.begin_repository_scan("hub", "app")
    moved = StagedTag("old", digest="sha256:2", event=DIGEST_CHANGED)
    outcome = finish(store, scan, pages, [moved], [added("new")])
    assert [(e.kind, e.tag) for e in store.events()] == [
        (DIGEST_CHANGED, "old"),
        (TAG_ADDED, "new"),
    ]
    assert outcome.events == 2


@pytest.mark.parametrize("pages", [1, 2], ids=["direct", "staged"])
@pytest.mark.parametrize("handed_off", [True, False], ids=["handed-off", "unseen"])
def test_a_digest_moved_by_a_push_during_the_scan_is_announced_once(
    store: Store, pages: int, handed_off: bool
) -> None:
    """The scan saw sha256:1 → sha256:2 (its HEAD), and so did a push that landed meanwhile."""
    first = store.begin_repository_scan("hub", "app")
    store.finish_repository_scan(first, last_page=[StagedTag("old", digest="sha256:1")])
    scan = store.begin_repository_scan("hub", "app")
    if handed_off:
        pushed = push(store, "old", "sha256:2")
    else:
        pushed = unseen_push(store, scan, "old", "sha256:2")
    moved = StagedTag("old", digest="sha256:2", event=DIGEST_CHANGED)
    outcome = finish(store, scan, pages, [moved], [added("new")])
    assert [(e.kind, e.tag, e.previous_digest) for e in store.events()] == [
        (DIGEST_CHANGED, "old", "sha256:1"),
        (TAG_ADDED, "new", None),
    ]
    assert store.events()[0].id == pushed
    assert outcome.events == 1
