"""What each secondary index costs the scan's single writer (a diagnostic, not a target), and
what the tag-name index that revision 0005 dropped on SQLite cost it.

Merges a tags-only listing of 200 repositories x 50 new tags ("v0000"…, as bench/scan.py
pushes) into a fresh SQLite store, in-process and without a registry: the repositories are
claimed first, then merged `--batch` at a time per transaction (`Store.write_batch`, as the
indexer's writer thread groups them). Each variant alters a fresh copy of the schema before the
merge: drops one index, adds the tag-name index back, or ignores the tag history rows. Variants
alternate; the median of `--rounds` is printed with its difference to the schema as it is. Only
the writer's work is timed.

    .venv/bin/python bench/merge_indexes.py [--batch 6] [--rounds 7]
"""

from __future__ import annotations

import argparse
import functools
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence

from regwatch.store import StagedTag, open_store

REPOSITORIES = 200
TAGS = 50
VARIANTS: dict[str, Sequence[str]] = {
    "schema as is": (),
    "with ix_tags_tag": ("CREATE INDEX ix_tags_tag ON tags (tag)",),  # before revision 0005
    "without the date index": ("DROP INDEX ix_tags_account_repository_date_key_tag",),
    "without the semver index": ("DROP INDEX ix_tags_account_repository_semver_key_tag",),
    "without the history index": ("DROP INDEX ix_tag_history_account_repository_tag_id",),
    "without history rows": (
        "CREATE TRIGGER bench_no_history BEFORE INSERT ON tag_history "
        "BEGIN SELECT RAISE(IGNORE); END",
    ),
}


def merge_seconds(statements: Sequence[str], batch: int) -> float:
    """Seconds the merges take on a fresh store altered by `statements`."""
    with tempfile.TemporaryDirectory() as scratch:
        path = f"{scratch}/bench.db"
        open_store(f"sqlite:///{path}").close()  # the schema at head
        with sqlite3.connect(path) as conn:
            for statement in statements:
                conn.execute(statement)
        store = open_store(f"sqlite:///{path}")
        try:
            store.ensure_account("bench", "127.0.0.1:5000")
            names = [f"bench/repo{r:04d}" for r in range(REPOSITORIES)]
            store.replace_repositories("bench", names)
            scans = store.begin_repository_scans("bench", names)
            pages = [[StagedTag(f"v{t:04d}") for t in range(TAGS)] for _ in names]
            started = time.perf_counter()
            for first in range(0, len(scans), batch):
                calls = [
                    functools.partial(store.finish_repository_scan, scan, last_page=page)
                    for scan, page in zip(
                        scans[first : first + batch], pages[first : first + batch], strict=True
                    )
                ]
                errors = [error for _, error in store.write_batch(calls) if error is not None]
                assert not errors, errors
            return time.perf_counter() - started
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=6, help="merges per transaction")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, statements in VARIANTS.items():
            seconds[name].append(merge_seconds(statements, args.batch))
    base = statistics.median(seconds["schema as is"])
    print(f"{REPOSITORIES} x {TAGS} new tags, {args.batch} merges per transaction, "
          f"median of {args.rounds}:")  # fmt: skip
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:26s} {median * 1000:6.1f} ms  ({(median - base) / base * 100:+5.1f} %)")


if __name__ == "__main__":
    main()
