"""WAL checkpoints of a SQLite store run on a background thread (store/checkpoint.py), not in
the writer's commits: the data reaches the database file without the writer checkpointing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from regwatch.store import StagedTag, Store, open_store
from regwatch.store.checkpoint import SAFETY_PAGES, BackgroundCheckpointer


def fill(store: Store, repositories: int, tags: int) -> None:
    store.ensure_account("hub", "reg.example:5000")
    listing = [StagedTag.seen(f"1.{n}.0-build-{'x' * 40}") for n in range(tags)]
    for r in range(repositories):
        scan = store.begin_repository_scan("hub", f"team/repo{r:03d}")
        store.finish_repository_scan(scan, last_page=listing)


def wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.02)
    return False


def writer_autocheckpoint(store: Store) -> int:
    with store.engines.writer.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_commits_reach_the_database_file_through_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    try:
        checkpointer = store.engines.checkpointer
        assert checkpointer is not None
        assert writer_autocheckpoint(store) == SAFETY_PAGES  # the writer does not checkpoint
        before = path.stat().st_size
        fill(store, repositories=20, tags=300)  # ~6,000 rows: thousands of pages of log
        wal_pages = Path(f"{path}-wal").stat().st_size // 4096
        assert 1000 < wal_pages < SAFETY_PAGES  # past SQLite's default, under the valve
        checkpointer.wake()  # the last commit woke it just before committing
        assert wait_for(lambda: path.stat().st_size > before + 1_000_000)
        assert checkpointer.checkpoints >= 1
        assert checkpointer.running
    finally:
        store.close()
    assert not checkpointer.running  # this store's thread (other tests' stores may have theirs)
    with sqlite3.connect(path) as conn:  # everything is there after close
        assert conn.execute("SELECT count(*) FROM tags").fetchone() == (6000,)


def test_a_reader_holding_a_snapshot_does_not_block_the_checkpointer_or_the_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}")
    try:
        fill(store, repositories=1, tags=10)
        with store.engines.reader.connect() as reader, reader.begin():
            seen = reader.exec_driver_sql("SELECT count(*) FROM tags").scalar_one()
            fill(store, repositories=3, tags=10)  # writes go on while the snapshot is held
            checkpointer = store.engines.checkpointer
            assert checkpointer is not None
            done = checkpointer.checkpoints
            checkpointer.wake()
            assert wait_for(lambda: checkpointer.checkpoints > done)  # PASSIVE: never waits
            assert reader.exec_driver_sql("SELECT count(*) FROM tags").scalar_one() == seen
        assert store.counts().tags == 30
    finally:
        store.close()


def test_a_missing_database_file_stops_the_thread_without_creating_one(tmp_path: Path) -> None:
    path = tmp_path / "gone.db"
    checkpointer = BackgroundCheckpointer(path, interval=0.01)
    checkpointer.wake()
    thread = checkpointer._thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive()
    checkpointer.close()
    assert not path.exists()


def test_an_in_memory_store_has_no_checkpointer() -> None:
    with open_store("sqlite:///:memory:") as store:
        assert store.engines.checkpointer is None
