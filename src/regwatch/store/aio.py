"""`AsyncStore`: the store for asyncio code (the indexer and the API).

Why a synchronous engine driven from asyncio rather than SQLAlchemy's async engine
(`sqlite+aiosqlite`, `postgresql+psycopg` async)? Measured on this machine (2 shared cores) for the
lookup API's typical query, an indexed SELECT of 20 rows out of 200,000 (bench/store_async.py):

    Store.find_images called inline on the event loop       p50  208 µs   p99  295 µs
    the same through a thread pool (run_in_executor)         p50  501 µs   p99  749 µs
    aiosqlite, the bare SQL only (no Store, no records)      p50  350 µs   p99  446 µs
and, measured once on a bare 20-row SELECT with SQLAlchemy's async engine (it needs greenlet,
which is not a dependency): sync inline 46 µs, thread pool 204 µs, `sqlite+aiosqlite` 591 µs.
Eight concurrent lookups through the thread pool take 4.4 ms (GIL hand-offs), which is one more
reason to keep SQLite reads on the loop.

aiosqlite hops to its own thread for every driver call (execute, each fetch, commit), and the
async engine additionally needs greenlet; a thread pool hops once per Store method. So:
- writes go to one dedicated writer thread: on SQLite that *is* the single writer (writes queue
  up instead of contending for the lock), and long merges (a 100,000-tag repository) never block
  the event loop;
- reads on SQLite run inline on the event loop by default: they are bounded, indexed SELECTs of a
  few hundred microseconds that under WAL never wait for the writer, and the thread hop would
  cost more than the query. On PostgreSQL (a network round trip) reads go to a thread pool.
  `inline_reads` overrides the default.

Group commit (SQLite, `batch_writes`): write calls queue up for the writer thread, which takes
every call waiting when it becomes free (at most `MAX_BATCH`) and runs them as one transaction,
each in its own savepoint (`Store.write_batch`): each call stays atomic, a caller is answered
once its call is committed, and nothing waits for a batch to fill (a lone call runs at once).
During a scan the merges of the repositories that finished while the writer was busy share one
commit: for the indexing benchmark's 200 repositories of 50 tags (begin + merge each, no
network), the process's CPU per repository fell from 1.8 to 0.95 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Concatenate, ParamSpec, TypeVar

from regwatch.store.store import Store, is_writer

P = ParamSpec("P")
R = TypeVar("R")
MAX_BATCH = 32  # write calls per group commit


@dataclass(frozen=True)
class _Queued:
    call: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle_all(answers: list[tuple[Any, ...]]) -> None:
    for future, value, error in answers:
        _settle(future, value, error)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled meanwhile
        return
    if error is None:
        future.set_result(value)
    else:
        future.set_exception(error)


class AsyncStore:
    """Runs `Store` methods for asyncio callers: `await astore.call(Store.find_images, q="x")`."""

    def __init__(
        self,
        store: Store,
        *,
        inline_reads: bool | None = None,
        read_threads: int = 4,
        batch_writes: bool | None = None,
    ) -> None:
        self.store = store
        self.inline_reads = store.is_sqlite if inline_reads is None else inline_reads
        self.batch_writes = store.is_sqlite if batch_writes is None else batch_writes
        self._queued: deque[_Queued] = deque()
        writers = 1 if store.is_sqlite or self.batch_writes else 2  # a batch is one committer
        self._writer = ThreadPoolExecutor(writers, thread_name_prefix="regwatch-store-write")
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="regwatch-store-read")

    async def call(
        self, method: Callable[Concatenate[Store, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run `method(store, *args, **kwargs)`: writers on the writer thread, readers inline or
        on the read pool (see the module docstring)."""
        if is_writer(method) and self.batch_writes:
            return await self._batched(partial(method, self.store, *args, **kwargs))
        if is_writer(method):
            return await self._in(self._writer, method, *args, **kwargs)
        if self.inline_reads:
            return method(self.store, *args, **kwargs)
        return await self._in(self._readers, method, *args, **kwargs)

    async def _in(
        self,
        executor: ThreadPoolExecutor,
        method: Callable[Concatenate[Store, P], R],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, partial(method, self.store, *args, **kwargs))

    async def _batched(self, call: Callable[[], R]) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queued.append(_Queued(call, future, loop))
        self._writer.submit(self._drain)  # one drain per call: the later ones may find none
        return await future

    def _drain(self) -> None:
        """On the writer thread: run the calls waiting (not cancelled) as one batch."""
        batch: list[_Queued] = []
        while self._queued and len(batch) < MAX_BATCH:
            queued = self._queued.popleft()
            if not queued.future.cancelled():
                batch.append(queued)
        if not batch:
            return
        try:
            if len(batch) == 1:  # no savepoint needed
                outcomes = self._run_one(batch[0].call)
            else:
                outcomes = self.store.write_batch([queued.call for queued in batch])
        except BaseException as exc:  # never leave a caller waiting
            for queued in batch:
                queued.loop.call_soon_threadsafe(_settle, queued.future, None, exc)
            raise
        settled: dict[asyncio.AbstractEventLoop, list[tuple[Any, ...]]] = {}
        for queued, (value, error) in zip(batch, outcomes, strict=True):
            settled.setdefault(queued.loop, []).append((queued.future, value, error))
        for loop, answers in settled.items():  # one wake-up of each loop per batch
            loop.call_soon_threadsafe(_settle_all, answers)

    @staticmethod
    def _run_one(call: Callable[[], Any]) -> list[tuple[Any, Exception | None]]:
        try:
            return [(call(), None)]
        except Exception as exc:  # handed back to its caller
            return [(None, exc)]

    async def aclose(self) -> None:
        """Wait for queued writes, then close the store."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._writer.shutdown)
        self._readers.shutdown(wait=False)
        self.store.close()
