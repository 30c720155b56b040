"""Fixtures of the integration tests (the project-wide ones are in tests/conftest.py).

clock  -> store_support.Clock at T0 (2024-05-01 00:00 UTC); a module may override it
store  -> a Store on `store_url` (either backend) running on `clock`; a module that needs
          setup overrides it and takes this one as its argument; after the test, the store's
          substring index must be exact (store_support.assert_search_index_exact):
              @pytest.fixture
              def store(store: Store) -> Store:
                  store.ensure_account("hub", "reg.example")
                  return store
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from store_support import Clock, assert_search_index_exact

from regwatch.store import AsyncStore, Store, open_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(store_url: str, clock: Clock) -> Iterator[Store]:
    with open_store(store_url, clock=clock) as opened:
        yield opened
        assert_search_index_exact(opened)


@pytest.fixture
async def astore(store_url: str) -> AsyncIterator[AsyncStore]:
    store = AsyncStore(open_store(store_url))
    yield store
    assert_search_index_exact(store.store)
    await store.aclose()
