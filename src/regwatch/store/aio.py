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
