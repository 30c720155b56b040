"""A settable clock for stores under test (`open_store(url, clock=clock)`), shared by the store
and events tests; `clock` and `store` fixtures built on it are in tests/integration/conftest.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
