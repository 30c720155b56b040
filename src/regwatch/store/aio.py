"""`AsyncStore`: the store for asyncio code (the indexer and the API).

Why a synchronous engine driven from asyncio rather than SQLAlchemy's async engine
(`sqlite+aiosqlite`, `postgresql+psycopg` async): measured on this machine (2 cores) for the lookup
API's typical query, one indexed SELECT returning 20 rows from 200,000 (bench/store_async.py):

    sync, called directly on the event loop     p50   46 µs   p99   87 µs
    sync, in a thread pool (run_in_executor)     p50  204 µs   p99  379 µs
    async engine, aiosqlite                      p50  591 µs   p99  832 µs
    8 concurrent queries: thread pool 1.9 ms, aiosqlite 6.8 ms (p50)

aiosqlite hops to its own thread for every driver call (execute, each fetch, commit), and the
async engine additionally needs greenlet; a thread pool hops once per Store method. So:
- writes go to one dedicated writer thread: on SQLite that *is* the single writer (writes queue
  up instead of contending for the lock), and long merges (a 100,000-tag repository) never block
  the event loop;
- reads on SQLite run inline on the event loop by default: they are bounded, indexed SELECTs of a
  few hundred microseconds that under WAL never wait for the writer, and the thread hop would
  cost more than the query. On PostgreSQL (a network round trip) reads go to a thread pool.
  `inline_reads` overrides the default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

from regwatch.store.store import Store, is_writer

P = ParamSpec("P")
R = TypeVar("R")


class AsyncStore:
    """Runs `Store` methods for asyncio callers: `await astore.call(Store.find_images, q="x")`."""

    def __init__(
        self, store: Store, *, inline_reads: bool | None = None, read_threads: int = 4
    ) -> None:
        self.store = store
        self.inline_reads = store.is_sqlite if inline_reads is None else inline_reads
        writers = 1 if store.is_sqlite else 2
        self._writer = ThreadPoolExecutor(writers, thread_name_prefix="regwatch-store-write")
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="regwatch-store-read")

    async def call(
        self, method: Callable[Concatenate[Store, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Run `method(store, *args, **kwargs)`: writers on the writer thread, readers inline or
        on the read pool (see the module docstring)."""
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

    async def aclose(self) -> None:
        """Wait for queued writes, then close the store."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._writer.shutdown)
        self._readers.shutdown(wait=False)
        self.store.close()
