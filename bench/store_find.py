"""Store-level lookup latency on a large index, SQLite or PostgreSQL.

Loads N tagged images (default 1,000,000) in 5 accounts into a fresh store — each account
has one 10,000-tag repository and ~1,000-tag repositories for the rest — then times the lookups
the API serves, printing p50/p99 per query:

    .venv/bin/python bench/store_find.py [--rows 1000000] [--db PATH] [--iterations 300]
    .venv/bin/python bench/store_find.py --url postgresql://user@host/db   # an existing database
    .venv/bin/python bench/store_find.py --postgres   # a throwaway server (tests/harness)

The bulk load writes rows straight into `tags` (ids in each account's id range; SQLite: the search
index kept by its triggers; PostgreSQL: COPY, then VACUUM ANALYZE as autovacuum would): the
indexer's staged path is measured by the integration tests, this is about reads. A database
without the regwatch schema is migrated first; one that already has tags is reused as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from regwatch.store import Store, current_revision, open_store, semver_key, upgrade
from regwatch.store.dialect import account_id_range
from regwatch.store.schema import repositories
from regwatch.store.search_upkeep import note_new_tags

TAG_COLUMNS = (
    "id, account, repository, tag, registry, ref, digest, created_ms, first_seen, last_seen, "
    "last_changed, semver_key, date_key"
)

ACCOUNTS = 5
BIG_REPO_TAGS = 10_000
TAGS_PER_REPO = 1_000
WORDS = "api web worker billing auth search payments frontend gateway metrics ingest cache".split()  # noqa: SIM905


def repo_names(rng: random.Random, account: int, count: int) -> list[str]:
    names = [f"team{account}/big-service"]
    while len(names) < count:
        names.append(f"team{len(names) % 17}/{rng.choice(WORDS)}-{rng.choice(WORDS)}-{len(names)}")
    return names


def tag_names(rng: random.Random, count: int) -> Iterator[str]:
    for i in range(count):
        kind = i % 4
        if kind == 0:
            yield f"{i // 1000}.{(i // 10) % 100}.{i % 10}"
        elif kind == 1:
            yield f"build-{i}"
        elif kind == 2:
            yield f"{i:06d}-{rng.choice(WORDS)}"
        else:
            yield f"sha-{rng.getrandbits(40):010x}"


def load(store: Store, rows: int, rng: random.Random) -> dict[str, list[str]]:
    """Bulk-insert `rows` tags; returns account → repositories."""
    per_account = rows // ACCOUNTS
    repos_per_account = 1 + max(0, (per_account - BIG_REPO_TAGS) // TAGS_PER_REPO)
    layout: dict[str, list[str]] = {}
    for a in range(ACCOUNTS):
        account, registry = f"account{a}", f"registry{a}.example.com:5000"
        store.ensure_account(account, registry)
        repos = repo_names(rng, a, repos_per_account)
        store.replace_repositories(account, repos)
        layout[account] = repos
    now = int(time.time() * 1000)
    with store.engines.writer.begin() as conn:
        keys: dict[str, int] = dict(conn.exec_driver_sql("SELECT name, key FROM accounts").all())
        for account, repos in layout.items():
            next_id = account_id_range(keys[account])[0]
            note_new_tags(conn, keys[account], next_id)  # SQLite: indexed for search at commit
            registry = f"registry{account[-1]}.example.com:5000"
            left = per_account
            for r, repo in enumerate(repos):
                count = min(BIG_REPO_TAGS if r == 0 else TAGS_PER_REPO, left)
                batch: list[tuple[Any, ...]] = []
                for tag in tag_names(rng, count):
                    next_id += 1
                    created = now - rng.randrange(0, 400 * 86_400_000)
                    ref = f"{registry}/{repo}:{tag}".lower()
                    batch.append(
                        (next_id, account, repo, tag, registry, ref, f"sha256:{next_id:064x}",
                         created, now, now, now, semver_key(tag), created)
                    )  # fmt: skip
                write_tags(conn, batch, sqlite=store.is_sqlite)
                conn.execute(
                    update(repositories)
                    .where(repositories.c.account == account, repositories.c.name == repo)
                    .values(status="ok", tag_count=count, last_ok_at=now)
                )
                left -= count
    if not store.is_sqlite:  # index-only scans need the visibility map; the planner, statistics
        with store.engines.writer.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return layout


def write_tags(conn: Connection, rows: list[tuple[Any, ...]], *, sqlite: bool) -> None:
    """SQLite: one executemany INSERT; PostgreSQL: COPY (~10x faster than INSERTs)."""
    if sqlite:
        marks = ", ".join("?" * len(rows[0]))
        conn.exec_driver_sql(f"INSERT INTO tags ({TAG_COLUMNS}) VALUES ({marks})", rows)
        return
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY tags ({TAG_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def timed(fn: Callable[[], Any], iterations: int) -> tuple[float, float, int]:
    for _ in range(5):
        fn()
    samples = []
    size = 0
    for _ in range(iterations):
        start = time.perf_counter()
        size = len(fn())
        samples.append(time.perf_counter() - start)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return statistics.median(samples) * 1000, p99 * 1000, size


def queries(
    store: Store, layout: dict[str, list[str]], rng: random.Random
) -> dict[str, Callable[[], Any]]:
    accounts = list(layout)
    sample = [store.find_images(account=a, repository=layout[a][-1], limit=50) for a in accounts]
    refs = [f"{i.registry}/{i.repository}:{i.tag}" for images in sample for i in images]

    def substring() -> str:
        ref = rng.choice(refs)
        start = rng.randrange(0, len(ref) - 6)
        return ref[start : start + rng.randrange(4, 12)]

    def pick() -> tuple[str, str]:
        account = rng.choice(accounts)
        return account, rng.choice(layout[account])

    def big() -> tuple[str, str]:
        account = rng.choice(accounts)
        return account, layout[account][0]

    return {
        "find q (no filter), count=50": lambda: store.find_images(substring(), limit=50),
        "find q + account, count=50": lambda: store.find_images(
            substring(), account=rng.choice(accounts), limit=50
        ),
        "find q rare (no match)": lambda: store.find_images(f"zz{rng.randrange(10**6)}q", limit=50),
        "find account+repo, count=50": lambda: store.find_images(
            account=(p := pick())[0], repository=p[1], limit=50
        ),
        "find account+repo+tag": lambda: store.find_images(
            account=(p := big())[0], repository=p[1], tag=f"build-{4 * rng.randrange(2_500) + 1}"
        ),
        "find account+repo (10k, no count)": lambda: store.find_images(
            account=(p := big())[0], repository=p[1]
        ),
        "find account only, count=100": lambda: store.find_images(
            account=rng.choice(accounts), limit=100
        ),
        "tags 10k lexical": lambda: store.tags(*big(), "lexical"),
        "tags 10k semver": lambda: store.tags(*big(), "semver"),
        "tags 10k date": lambda: store.tags(*big(), "date"),
        "tags 1k lexical": lambda: store.tags(*pick(), "lexical"),
        "counts": lambda: [store.counts()],
        "account_status": lambda: [store.account_status(rng.choice(accounts))],
    }


def database_size_mb(store: Store, path: Path) -> float:
    if store.is_sqlite:
        return path.stat().st_size / 1e6
    with store.engines.reader.connect() as conn:
        size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar_one()
    return int(size) / 1e6


@contextlib.contextmanager
def store_url(args: argparse.Namespace) -> Iterator[tuple[str, Path]]:
    """The URL to benchmark (and the SQLite file, when it is one)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        if args.url:
            yield args.url, path
        elif args.postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from harness.postgres import PostgresServer

            # a production-like cache: the 1M-row database (~0.8 GB) fits in shared buffers
            with PostgresServer(settings={"shared_buffers": "1GB"}) as server:
                yield server.url(server.create_database("bench")), path
        else:
            yield f"sqlite:///{path}", path


def open_loaded(
    url: str, path: Path, rows: int, rng: random.Random
) -> tuple[Store, dict[str, list[str]]]:
    """Open the store (migrating an empty database), loading it unless it already has tags."""
    if not url.startswith("sqlite") and current_revision(url) is None:
        upgrade(url)
    store = open_store(url)
    if store.counts().tags == 0:
        started = time.perf_counter()
        layout = load(store, rows, rng)
        size = database_size_mb(store, path)
        print(f"loaded {rows:,} rows in {time.perf_counter() - started:.1f} s, {size:.0f} MB")
        return store, layout
    layout = {  # the 10k-tag repository first, as load() returns it
        a: [r.name for r in sorted(store.repositories(a), key=lambda r: -r.tag_count)]
        for a in store.accounts()
    }
    print(f"reusing the store ({store.counts().tags:,} tags)")
    return store, layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse/create this SQLite file (default: temp)")
    parser.add_argument("--url", help="a store URL instead (e.g. postgresql://user@host/db)")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL server")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--no-gc-freeze", action="store_true", help="measure with plain GC")
    args = parser.parse_args()
    with store_url(args) as (url, path):
        run(url, path, args)


def run(url: str, path: Path, args: argparse.Namespace) -> None:
    rng = random.Random(42)
    store, layout = open_loaded(url, path, args.rows, rng)
    print(f"store: {store.engines.writer.dialect.name}")
    if not args.no_gc_freeze:
        # Without this, a full GC pass over the ~0.5M long-lived objects of SQLAlchemy & co.
        # lands in the p99 of allocation-heavy queries (10k-tag lists: p99 24 ms instead of 5).
        # The service should do the same after start-up.
        gc.freeze()
    print(f"{'query':38s} {'p50 ms':>8s} {'p99 ms':>8s} {'rows':>7s}")
    for name, fn in queries(store, layout, rng).items():
        p50, p99, size = timed(fn, args.iterations)
        print(f"{name:38s} {p50:8.3f} {p99:8.3f} {size:7d}")
    store.close()


if __name__ == "__main__":
    main()
