"""Store-level lookup latency on a large SQLite index.

Loads N tagged images (default 1,000,000) in 5 accounts into a fresh SQLite store — each account
has one 10,000-tag repository and ~1,000-tag repositories for the rest — then times the lookups
the API serves, printing p50/p99 per query:

    .venv/bin/python bench/store_find.py [--rows 1000000] [--db PATH] [--iterations 300]

The bulk load writes rows straight into `tags` (ids in each account's id range, the search index
kept by its triggers): the indexer's staged path is measured by the integration tests, this is
about reads.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from regwatch.store import Store, open_store, semver_key
from regwatch.store.dialect import account_id_range

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
        keys = dict(conn.exec_driver_sql("SELECT name, key FROM accounts").all())
        for account, repos in layout.items():
            next_id = account_id_range(keys[account])[0]
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
                conn.exec_driver_sql(
                    "INSERT INTO tags (id, account, repository, tag, registry, ref, digest, "
                    "created_ms, first_seen, last_seen, last_changed, semver_key, date_key) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    batch,
                )
                conn.exec_driver_sql(
                    "UPDATE repositories SET status='ok', tag_count=?, last_ok_at=? "
                    "WHERE account=? AND name=?",
                    (count, now, account, repo),
                )
                left -= count
    return layout


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse/create this SQLite file (default: temp)")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--no-gc-freeze", action="store_true", help="measure with plain GC")
    args = parser.parse_args()
    rng = random.Random(42)
    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "bench.db"
    fresh = not path.exists()
    store = open_store(f"sqlite:///{path}")
    if fresh:
        started = time.perf_counter()
        layout = load(store, args.rows, rng)
        size = path.stat().st_size / 1e6
        print(f"loaded {args.rows:,} rows in {time.perf_counter() - started:.1f} s, {size:.0f} MB")
    else:
        layout = {  # the 10k-tag repository first, as load() returns it
            a: [r.name for r in sorted(store.repositories(a), key=lambda r: -r.tag_count)]
            for a in store.accounts()
        }
        print(f"reusing {path} ({store.counts().tags:,} tags)")
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
    tmp.cleanup()


if __name__ == "__main__":
    main()
