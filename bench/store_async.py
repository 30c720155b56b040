"""Per-query overhead of the ways asyncio code can reach the store (the choice in store/aio.py).

One indexed SELECT of 20 rows from 200,000 (the lookup API's typical query), timed as:
- the Store method called directly (what AsyncStore does for SQLite reads: inline),
- the Store method through AsyncStore with a thread pool (what it does on PostgreSQL),
- the same SQL through aiosqlite (what `sqlite+aiosqlite` is built on; SQLAlchemy's async
  engine adds its greenlet bridge on top, so this is a lower bound for it),
each alone and 8 at a time.

    .venv/bin/python bench/store_async.py
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite

from regwatch.store import AsyncStore, StagedTag, Store, open_store

SQL = (
    "SELECT account, registry, repository, tag, digest, index_digest, platform_digests, "
    "created_ms, labels, first_seen, last_seen, last_changed FROM tags "
    "WHERE account = ? AND repository = ? ORDER BY tag LIMIT 20"
)


def populate(store: Store, repos: int = 200, tags: int = 1000) -> None:
    store.ensure_account("acct", "registry.example")
    store.replace_repositories("acct", [f"team/repo{r}" for r in range(repos)])
    for r in range(repos):
        scan = store.begin_repository_scan("acct", f"team/repo{r}")
        store.stage_tags(scan, [StagedTag(f"1.{t}", digest=f"sha256:{t}") for t in range(tags)])
        store.finish_repository_scan(scan)


async def timed(fn: Callable[[], Awaitable[Any]], n: int = 2000) -> str:
    for _ in range(100):
        await fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p99 = statistics.median(samples), samples[int(n * 0.99)]
    return f"p50 {p50 * 1e6:7.0f} µs   p99 {p99 * 1e6:7.0f} µs"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        store = open_store(f"sqlite:///{path}")
        populate(store)
        inline = AsyncStore(store)
        pooled = AsyncStore(store, inline_reads=False)
        db = await aiosqlite.connect(path)

        async def direct() -> Any:
            return store.find_images(account="acct", repository="team/repo7", limit=20)

        async def via(astore: AsyncStore) -> Any:
            return await astore.call(
                Store.find_images, account="acct", repository="team/repo7", limit=20
            )

        async def with_aiosqlite() -> Any:
            async with db.execute(SQL, ("acct", "team/repo7")) as cursor:
                return await cursor.fetchall()

        def burst(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
            return lambda: asyncio.gather(*(fn() for _ in range(8)))

        cases: dict[str, Callable[[], Awaitable[Any]]] = {
            "Store method, inline on the loop": direct,
            "AsyncStore, thread pool": lambda: via(pooled),
            "aiosqlite, raw SQL (no Store)": with_aiosqlite,
            "8 concurrent: AsyncStore thread pool": burst(lambda: via(pooled)),
            "8 concurrent: aiosqlite": burst(with_aiosqlite),
        }
        for name, fn in cases.items():
            print(f"{name:40s} {await timed(fn, 500 if 'concurrent' in name else 2000)}")
        await db.close()
        await pooled.aclose()
        await inline.aclose()


if __name__ == "__main__":
    asyncio.run(main())
