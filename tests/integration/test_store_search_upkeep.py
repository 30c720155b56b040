"""SQLite's substring index takes a write transaction's new tags just before its commit
(store/search_upkeep.py): a savepoint rolled back, a tag deleted before the commit, a registry
renamed and the migration both ways must all leave the index exactly the stored tags."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from store_support import assert_search_index_exact

from regwatch.store import StagedTag, Store, open_store
from regwatch.store.engine import make_engines
from regwatch.store.migrate import alembic_config, current_revision, head_revision, upgrade


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    with open_store(url) as opened:
        opened.ensure_account("hub", "reg.example")
        opened.replace_repositories("hub", ["a", "b", "c"])
        yield opened


def merge(store: Store, repo: str, tags: list[str]) -> Callable[[], Any]:
    scan = store.begin_repository_scan("hub", repo)
    return lambda: store.finish_repository_scan(scan, last_page=[StagedTag(t) for t in tags])


def found(store: Store, q: str) -> list[str]:
    return sorted(f"{image.repository}:{image.tag}" for image in store.find_images(q))


def pending(store: Store) -> int:
    with store.engines.reader.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM tags_search_pending").scalar_one())


def test_a_batch_indexes_its_tags_once_and_a_rolled_back_call_leaves_nothing(store: Store) -> None:
    def fails_after_writing() -> None:
        merge(store, "b", ["lost-1", "lost-2"])()
        raise RuntimeError("after its tags were written")

    outcomes = store.write_batch([merge(store, "a", ["one", "two"]), fails_after_writing])
    assert [type(error) for _, error in outcomes] == [type(None), RuntimeError]
    assert found(store, "reg.example/a:") == ["a:one", "a:two"]
    assert found(store, "lost") == []
    assert pending(store) == 0
    assert_search_index_exact(store)


def test_every_merge_of_one_account_in_a_batch_is_indexed(store: Store) -> None:
    """The second merge notes a higher first id than the first: the lower one must stay."""
    store.write_batch([merge(store, "a", ["one", "two"]), merge(store, "b", ["three"])])
    assert found(store, "reg.example/") == ["a:one", "a:two", "b:three"]
    assert_search_index_exact(store)


def test_ids_given_again_after_a_delete_in_the_same_transaction_are_indexed(
    store: Store,
) -> None:
    """The account's top rows (new and already indexed) are deleted, so the next insert takes
    ids below the first id noted before: the note moves down to them."""
    merge(store, "b", ["indexed"])()
    store.write_batch(
        [
            merge(store, "a", ["one", "two"]),
            lambda: store.replace_repositories("hub", ["c"]),  # drops a's and b's tags
            merge(store, "c", ["three"]),
        ]
    )
    assert found(store, "reg.example/") == ["c:three"]
    assert_search_index_exact(store)


def test_tags_deleted_before_their_commit_never_reach_the_index(store: Store) -> None:
    store.write_batch([merge(store, "a", ["one"]), lambda: store.delete_account("hub")])
    assert store.find_images("one") == []
    assert_search_index_exact(store)


def test_a_new_registry_address_is_searchable_and_the_old_one_is_not(store: Store) -> None:
    merge(store, "a", ["one", "two"])()
    store.ensure_account("hub", "mirror.example:5000")
    assert found(store, "mirror.example:5000/a:t") == ["a:two"]
    assert found(store, "reg.example") == []
    assert_search_index_exact(store)


def test_the_migration_keeps_the_index_exact_both_ways(url: str, store: Store) -> None:
    merge(store, "a", ["before-upkeep"])()
    other = make_engines(url)  # not the store's: what an older regwatch would use
    try:
        with other.writer.connect() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0003")  # back to the per-row trigger
            conn.commit()
        assert current_revision(url) == "0003"
        with other.writer.connect() as conn, conn.begin():
            names = set(conn.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
            assert "tags_search_pending" not in names
            conn.exec_driver_sql(  # a tag written by that revision
                "INSERT INTO tags (id, account, repository, tag, registry, ref, first_seen, "
                "last_seen, last_changed, semver_key, date_key) SELECT id + 1, account, "
                "repository, 'old-revision', registry, 'reg.example/a:old-revision', 0, 0, 0, "
                "'', 0 FROM tags"
            )
    finally:
        other.dispose()
    upgrade(url)
    assert current_revision(url) == head_revision()
    assert found(store, "before-upkeep") == ["a:before-upkeep"]
    assert found(store, "old-revision") == ["a:old-revision"]
    merge(store, "a", ["after-upkeep"])()  # the listing also removes the two others
    assert found(store, "upkeep") == ["a:after-upkeep"]
    assert_search_index_exact(store)
