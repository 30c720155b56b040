"""A settable clock for stores under test (`open_store(url, clock=clock)`), shared by the store
and events tests; `clock` and `store` fixtures built on it are in tests/integration/conftest.py.
Also the check that the store's substring index is exact, run by those fixtures after each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from regwatch.store import Store

T0 = datetime(2024, 5, 1, tzinfo=UTC)


class Clock:
    """Stands still until a test moves it (several stores may share one: their clocks agree)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 60) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def assert_search_index_exact(store: Store) -> None:
    """SQLite: the substring index holds exactly the stored tags (FTS5's integrity check against
    its content table) and no tag is left pending (store/search_upkeep.py). PostgreSQL: nothing
    to check (its index is the database's own)."""
    if not store.is_sqlite:
        return
    with store.engines.writer.connect() as conn:
        conn.exec_driver_sql(
            "INSERT INTO tags_search(tags_search, rank) VALUES ('integrity-check', 1)"
        )
        pending = conn.exec_driver_sql("SELECT count(*) FROM tags_search_pending").scalar_one()
    assert pending == 0
