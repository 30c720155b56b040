"""Group commit: `Store.write_batch` runs write methods in one transaction with a savepoint each,
and `AsyncStore` batches the write calls that queue up while its writer thread is busy.
On SQLite, or PostgreSQL with REGWATCH_TEST_STORE=postgres."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import partial
from typing import Any

import pytest
from store_support import assert_search_index_exact

from regwatch.errors import StoreError
from regwatch.store import AsyncStore, StagedTag, Store, open_store
from regwatch.store.store import writes


class GatedStore(Store):
    """A Store with a write method that holds the writer thread until released."""

    @writes
    def hold(self, gate: threading.Event) -> None:
        assert gate.wait(10), "never released"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        opened.ensure_account("hub", "reg.example")
        opened.replace_repositories("hub", ["a", "b", "c"])
        yield opened
        assert_search_index_exact(opened)


def merged(store: Store, repo: str, tags: Sequence[str]) -> Callable[[], Any]:
    scan = store.begin_repository_scan("hub", repo)
    return partial(
        store.finish_repository_scan,
        scan,
        last_page=[StagedTag(t, digest="sha256:1") for t in tags],
    )


def test_a_failed_call_of_a_batch_is_rolled_back_alone(store: Store) -> None:
    superseded = merged(store, "b", ["lost"])
    store.begin_repository_scan("hub", "b")  # the scan behind `superseded` is no longer current
    calls = [merged(store, "a", ["1", "2"]), superseded, merged(store, "c", ["3"])]
    outcomes = store.write_batch(calls)
    assert [type(error) for _, error in outcomes] == [type(None), StoreError, type(None)]
    assert [value.tags if value else None for value, _ in outcomes] == [2, None, 1]
    assert (store.tags("hub", "a"), store.tags("hub", "b"), store.tags("hub", "c")) == (
        ["1", "2"], [], ["3"],
    )  # fmt: skip
    assert store.find_images("reg.example/c:3")[0].tag == "3"


def test_a_call_failing_half_way_leaves_nothing_of_itself(store: Store) -> None:
    def half_way() -> None:
        store.replace_repositories("hub", ["a", "b", "c", "d"])  # written, then undone
        raise RuntimeError("boom")

    outcomes = store.write_batch([half_way, merged(store, "a", ["1"])])
    assert isinstance(outcomes[0][1], RuntimeError)
    assert [r.name for r in store.repositories("hub")] == ["a", "b", "c"]
    assert store.tags("hub", "a") == ["1"]


@pytest.fixture
async def gated(store_url: str) -> AsyncIterator[tuple[AsyncStore, GatedStore]]:
    inner = GatedStore(open_store(store_url).engines, store_url)
    inner.ensure_account("hub", "reg.example")
    inner.replace_repositories("hub", ["a", "b", "c"])
    astore = AsyncStore(inner, batch_writes=True)
    yield astore, inner
    await astore.aclose()


async def test_writes_queued_behind_a_busy_writer_share_one_transaction(
    gated: tuple[AsyncStore, GatedStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    astore, inner = gated
    batches: list[int] = []
    real = inner.write_batch

    def spy(calls: Sequence[Callable[[], Any]]) -> list[tuple[Any, Exception | None]]:
        batches.append(len(calls))
        return real(calls)

    monkeypatch.setattr(inner, "write_batch", spy)
    gate = threading.Event()
    holding = asyncio.ensure_future(astore.call(GatedStore.hold, gate))
    await asyncio.sleep(0.05)
    scans = [inner.begin_repository_scan("hub", repo) for repo in ("a", "b", "c")]
    stale = inner.begin_repository_scan("hub", "c")  # supersedes scans[2]
    finishing = [
        asyncio.ensure_future(
            astore.call(Store.finish_repository_scan, scan, last_page=[StagedTag(scan.repository)])
        )
        for scan in scans
    ]
    await asyncio.sleep(0.05)
    gate.set()
    await holding
    results = await asyncio.gather(*finishing, return_exceptions=True)
    assert batches == [3]
    assert [getattr(r, "tags", None) for r in results[:2]] == [1, 1]
    assert isinstance(results[2], StoreError)  # its caller gets its error, the others commit
    assert (inner.tags("hub", "a"), inner.tags("hub", "c")) == (["a"], [])
    assert (await astore.call(Store.finish_repository_scan, stale)).tags == 0


async def test_a_cancelled_call_still_waiting_for_the_writer_never_runs(
    gated: tuple[AsyncStore, GatedStore],
) -> None:
    astore, inner = gated
    gate = threading.Event()
    holding = asyncio.ensure_future(astore.call(GatedStore.hold, gate))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(astore.call(Store.replace_repositories, "hub", ["z"]))
    await asyncio.sleep(0.05)
    waiting.cancel()
    gate.set()
    await holding
    await astore.call(Store.ensure_account, "other", "other.example")  # drains the queue
    assert [r.name for r in inner.repositories("hub")] == ["a", "b", "c"]
    assert inner.accounts() == ["hub", "other"]
