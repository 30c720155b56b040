"""`images.image_rows`, the find route's store call: on SQLite it keeps one reader connection
per store and thread between lookups; every lookup still sees the latest commit. Both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from regwatch.api import images
from regwatch.store import StagedTag, Store, open_store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


def index(store: Store, account: str, repo: str, tags: list[str]) -> None:
    store.ensure_account(account, "reg.example")
    started = store.begin_repository_scan(account, repo)
    store.stage_tags(started, [StagedTag(tag) for tag in tags])
    store.finish_repository_scan(started)


def tags_of(rows: list[tuple[object, ...]]) -> list[object]:
    return [row[3] for row in rows]


def test_each_lookup_sees_the_latest_commit(store: Store) -> None:
    index(store, "a", "team/app", ["1.0"])
    assert tags_of(images.image_rows(store, False, q="team/app", limit=10)) == ["1.0"]
    assert tags_of(images.image_rows(store, False, q="app", account="a", limit=10)) == ["1.0"]
    index(store, "a", "team/app", ["1.0", "2.0"])  # committed after those lookups
    assert tags_of(images.image_rows(store, False, q="team/app", limit=10)) == ["1.0", "2.0"]
    assert tags_of(images.image_rows(store, False, q="app", account="a")) == ["1.0", "2.0"]
    found = images.image_rows(store, False, account="a", repository="team/app", limit=1)
    assert tags_of(found) == ["1.0"]
    if store.is_sqlite:  # the kept connection is outside any transaction between lookups
        (held,) = images._held[store].values()
        assert not held.in_transaction()


def test_a_connection_is_kept_per_thread_on_sqlite(store: Store) -> None:
    index(store, "a", "team/app", ["1.0"])
    images.image_rows(store, False, q="team", limit=5)
    other: list[list[tuple[object, ...]]] = []

    def lookup() -> None:
        other.append(images.image_rows(store, False, q="team"))

    thread = threading.Thread(target=lookup)
    thread.start()
    thread.join()
    assert tags_of(other[0]) == ["1.0"]
    kept = images._held.get(store, {})
    assert len(kept) == (2 if store.is_sqlite else 0)
