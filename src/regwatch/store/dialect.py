"""The few things that differ between SQLite and PostgreSQL, each behind one small function.

Everything else in the store is portable SQLAlchemy Core.

Substring search (`q` of images/find): both backends keep `tags.ref` = lower(`registry/repo:tag`).
- SQLite: an external-content FTS5 table `tags_search` with the trigram tokenizer and
  `detail=none`. A query ANDs the three rarest trigrams of `q` (`TrigramCounts`), which
  narrows the candidates through the index, and re-checks `ref LIKE %q%` on each candidate
  (detail=none cannot do phrase queries, and a trigram AND may have false positives). The FTS
  rowid is `tags.id`, whose high bits are the account (see schema), so an account filter
  becomes a rowid range that FTS5 applies inside the index instead of after it. Queries
  shorter than 3 characters have no trigram and fall back to a scan (of the account's id range
  when an account is given). New tags enter the index once per write transaction, just before
  its commit (store/search_upkeep.py), not from a per-row trigger.
- PostgreSQL: a GIN index over (account, `ref` with its punctuation translated to letters),
  pg_trgm and btree_gin (migration 0003 says why); queries add `SEARCH_TEXT LIKE` so that the
  planner can use it, and a `q` with a limit goes through `store/search.py`.

Concurrent writers: SQLite has one writer at a time, PostgreSQL runs writers of several instances
at once. Where the store reads, then writes on what it read (the next account key) or where the
commit order matters (event `seq`s), `transaction_lock` serialises those transactions on
PostgreSQL with an advisory lock held until commit; on SQLite it does nothing.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from regwatch.store.schema import tags

tags_search = table("tags_search", column("rowid"))
ACCOUNT_ID_BITS = 40
# PostgreSQL's substring index is over this expression (migration 0003, which explains it): the
# query must spell it the same for the planner to use the index.
SEARCH_TEXT = "translate(tags.ref, '.:/-_', 'qjzxv')"
_SEARCH_CHARS = str.maketrans(".:/-_", "qjzxv")
_MAX_TRIGRAMS = 8
_RAREST = 3
MAX_SEGMENTS = 4  # merge_search_index: above this many segments
MERGE_PAGES = 500
log = logging.getLogger(__name__)
# advisory lock keys (any bigint; "rgw" + a number, to be recognisable in pg_locks)
ACCOUNT_KEYS_LOCK = 0x726777_0001
EVENT_ORDER_LOCK = 0x726777_0002


def transaction_lock(conn: Connection, key: int) -> None:
    """PostgreSQL: wait for, then hold until the transaction ends, the advisory lock `key`.
    SQLite: nothing (a write transaction already excludes every other writer)."""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(key)))


def prefer_set_joins(conn: Connection) -> None:
    """PostgreSQL: no nested-loop joins for the rest of the transaction (the merge of a scan).

    The merge joins a scan's staged tags with the repository's indexed ones, both sides the size
    of the repository: hash or merge joins over the two index ranges are linear. A nested loop is
    only as good as the index it probes, and without statistics (a new or just-grown table,
    before autovacuum analyses it) PostgreSQL rates the (account, repository, date_key, tag)
    index as good as the unique (account, repository, tag) one, probes it with `tag` as a
    non-leading column, and a 10,000-tag rescan took 45 s instead of 0.3 s. SQLite: nothing
    (its planner prefers the unique index for an equality on all its columns)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_nestloop = off")


def lock_event_order(conn: Connection) -> None:
    """Call before inserting into `events`: the `seq`s of concurrent transactions then follow
    their commit order, so a reader that resumes after the last `seq` it saw misses nothing.
    (A PostgreSQL sequence hands out numbers in call order, and a transaction that got a lower
    one may commit later.)"""
    transaction_lock(conn, EVENT_ORDER_LOCK)


def account_id_range(key: int) -> tuple[int, int]:
    """The inclusive range of tag ids that belong to the account with this key."""
    low = key << ACCOUNT_ID_BITS
    return low, low + (1 << ACCOUNT_ID_BITS) - 1


def like_pattern(q: str) -> str:
    """`%q%` with LIKE's wildcards escaped (use with `escape="\\\\"`)."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_text_contains() -> ColumnElement[bool]:
    """PostgreSQL: the indexed `SEARCH_TEXT` LIKE :chars (bind `chars` to `chars_pattern(q)`):
    what lets the planner use the substring index; `ref_contains` must re-check."""
    return literal_column(SEARCH_TEXT).like(bindparam("chars"), escape="\\")


def chars_pattern(q: str) -> str:
    """`like_pattern` of `q` as `SEARCH_TEXT` translates refs."""
    return like_pattern(q.lower().translate(_SEARCH_CHARS))


def ref_contains() -> ColumnElement[bool]:
    """`ref LIKE :pattern` (bind `pattern` to `like_pattern(q.lower())`)."""
    return tags.c.ref.like(bindparam("pattern"), escape="\\")


def trigram_query(q: str, counts: Mapping[str, int] | None = None) -> str | None:
    """An FTS5 query ANDing a few trigrams of `q`; None below 3 characters.

    With `counts` (`TrigramCounts`): the `_RAREST` rarest ones. The candidates are then the few
    rows holding the rarest trigrams rather than the many holding common ones (`cache-cac`: 11 ms
    → under 1 ms), and re-checking them with LIKE is cheap. Measured over 1,500 random substrings
    on the 1M-row bench store: mean 0.34 → 0.18 ms, p99 3.0 → 1.4 ms, worst 11 → 4 ms (using all
    trigrams: mean 0.29 ms; the 2 rarest: p99 3.3 ms, the 4 rarest: mean 0.25 ms). A trigram
    unknown to `counts` (indexed since they were loaded) counts as the rarest. Without `counts`,
    a covering subset spread over `q`."""
    text = q.lower()
    if len(text) < 3:
        return None
    if counts is not None:
        distinct = dict.fromkeys(text[i : i + 3] for i in range(len(text) - 2))
        rarest = sorted(distinct, key=lambda gram: counts.get(gram, 0))[:_RAREST]
        return _fts_and(rarest)
    starts = list(range(0, len(text) - 2, 3))
    if starts[-1] != len(text) - 3:
        starts.append(len(text) - 3)
    if len(starts) > _MAX_TRIGRAMS:  # spread the chosen ones over the whole string
        step = len(starts) / _MAX_TRIGRAMS
        starts = [starts[int(i * step)] for i in range(_MAX_TRIGRAMS)]
    return _fts_and(dict.fromkeys(text[i : i + 3] for i in starts))


def _fts_and(grams: Iterable[str]) -> str:
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


class TrigramCounts:
    """How many indexed refs hold each trigram (SQLite: the FTS5 vocabulary), for choosing the
    rarest trigrams of a `q`. Reading the vocabulary walks every doclist (~0.8 s for 1M refs,
    and ~3 ms for a single term), so it is loaded in a background thread, never on a request
    (which first merges the index's segments when there are many, `merge_search_index`): until
    the first load ends `get()` returns None (the covering choice is used), and a load older than
    `max_age` seconds is redone in the background while the old counts keep serving. The counts
    only steer which trigrams are ANDed; results are exact whatever they say (LIKE re-check)."""

    def __init__(self, engine: Engine, max_age: float = 900.0) -> None:
        self.engine = engine
        self.max_age = max_age
        self._counts: dict[str, int] | None = None
        self._loaded_at = 0.0
        self._loading = threading.Lock()

    def get(self) -> Mapping[str, int] | None:
        if time.monotonic() - self._loaded_at > self.max_age and self._loading.acquire(False):
            threading.Thread(target=self._load, name="regwatch-trigrams", daemon=True).start()
        return self._counts

    def load(self) -> None:
        """Read the counts now (in the calling thread)."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql(
                "CREATE VIRTUAL TABLE IF NOT EXISTS temp.tags_search_vocab "
                "USING fts5vocab(main, tags_search, row)"
            )
            try:
                rows = conn.exec_driver_sql("SELECT term, doc FROM temp.tags_search_vocab")
                self._counts = {str(term): int(doc) for term, doc in rows}
            finally:
                conn.exec_driver_sql("DROP TABLE temp.tags_search_vocab")
        self._loaded_at = time.monotonic()

    def _load(self) -> None:
        try:
            self._merge()
            self.load()
        except Exception:  # a missed refresh only costs speed; retried after max_age
            # debug: a short-lived process (`regwatch images find`) may close the store mid-load
            log.debug("could not read the substring index's vocabulary", exc_info=True)
            self._loaded_at = time.monotonic()
        finally:
            self._loading.release()

    def _merge(self) -> None:
        try:
            merge_search_index(self.engine)
        except Exception:  # upkeep only: the index stays exact, and the counts load anyway
            log.debug("could not merge the substring index's segments", exc_info=True)


def search_index_segments(driver: Any) -> int:
    """How many segments (b-trees) the SQLite substring index has (`driver`: a sqlite3
    connection): a query reads each of its trigrams' doclists from every segment."""
    (found,) = driver.execute("SELECT count(DISTINCT segid) FROM tags_search_idx").fetchone()
    return int(found or 0)


def merge_search_index(
    engine: Engine, *, above: int = MAX_SEGMENTS, pages: int = MERGE_PAGES, budget_s: float = 120.0
) -> int:
    """Merge the SQLite substring index into one segment when it has more than `above`; the
    number of merge steps run (0: nothing to do, or not a SQLite file).

    Every write transaction adds a segment and FTS5's automerge only merges 4 of one level at
    a time, so an index written by scans (or a bulk load) keeps several: 7 on the 1M-image bench
    store, where one segment took a `q` lookup's SQL from 0.20 to 0.16 ms (mean over 1,500
    substrings; p50 0.16 -> 0.12 ms). The merge runs as FTS5 'merge' steps of `pages` pages,
    each its own short write transaction (500 pages: ~60 ms, at most ~0.3 s, 28 steps and
    1.8 s for the 61 MB index of 1M refs), so a scan waits at most one step for the write lock.
    Runs in the counts' background thread (below), at most once per refresh (15 min)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return 0
    steps = 0
    deadline = time.monotonic() + budget_s
    with engine.connect() as conn:  # the driver's connection, outside SQLAlchemy's BEGIN
        driver: Any = conn.connection.driver_connection
        if search_index_segments(driver) <= above:
            return 0
        while time.monotonic() < deadline:
            before = driver.total_changes
            driver.execute("BEGIN IMMEDIATE")
            try:
                driver.execute(
                    "INSERT INTO tags_search(tags_search, rank) VALUES ('merge', ?)", (-pages,)
                )
                driver.execute("COMMIT")
            except BaseException:
                driver.execute("ROLLBACK")
                raise
            steps += 1
            if driver.total_changes - before < 2:  # FTS5: nothing left to merge
                break
    log.debug("merged the substring index in %d steps", steps)
    return steps


_trigram_counts: weakref.WeakKeyDictionary[Engine, TrigramCounts] = weakref.WeakKeyDictionary()
_counts_lock = threading.Lock()


def trigram_counts(engine: Engine) -> TrigramCounts:
    """The engine's (one per database, shared by its connections)."""
    with _counts_lock:
        found = _trigram_counts.get(engine)
        if found is None:
            found = _trigram_counts[engine] = TrigramCounts(engine)
        return found


def search_images(
    query: Select[Any], *, fts: bool, id_range: bool, chars: bool = False
) -> Select[Any]:
    """Restrict a SELECT over `tags` to rows whose ref contains the `pattern`, ordered by id.

    `fts`: go through the SQLite trigram index (bind `match` to `trigram_query(q)`);
    `chars`: PostgreSQL, through its substring index (bind `chars` to `chars_pattern(q)`);
    `id_range`: only one account's ids (bind `low`, `high` to `account_id_range(key)`).
    """
    query = query.where(ref_contains())
    if chars:
        query = query.where(search_text_contains())
    if fts:
        query = query.join(tags_search, tags_search.c.rowid == tags.c.id).where(
            literal_column("tags_search").op("MATCH")(bindparam("match"))
        )
        order_key: Any = tags_search.c.rowid
    else:
        order_key = tags.c.id
    if id_range:
        query = query.where(order_key.between(bindparam("low"), bindparam("high")))
    return query.order_by(order_key)


def insert_ignoring_conflicts(
    conn: Connection, target: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> None:
    """INSERT rows, silently skipping those whose `keys` already exist."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(target).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(pg, list(rows))
    else:
        lite = sqlite.insert(target).on_conflict_do_nothing(index_elements=list(keys))
        conn.execute(lite, list(rows))


def upsert(
    conn: Connection,
    target: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    """INSERT rows, or UPDATE the `update` columns of those whose `keys` already exist."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(target)
        pg_stmt = pg.on_conflict_do_update(
            index_elements=list(keys), set_={name: pg.excluded[name] for name in update}
        )
        conn.execute(pg_stmt, list(rows))
    else:
        lite = sqlite.insert(target)
        lite_stmt = lite.on_conflict_do_update(
            index_elements=list(keys), set_={name: lite.excluded[name] for name in update}
        )
        conn.execute(lite_stmt, list(rows))


def conditional_upsert(
    conn: Connection, target: Table, row: dict[str, Any], key: str, when: ColumnElement[bool]
) -> bool:
    """INSERT one row, or overwrite the existing one only `when` holds; whether a row was written.

    Uses RETURNING rather than rowcount, which psycopg 3 does not report for INSERTs.
    """
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(target).values(row)
        stmt: Any = pg.on_conflict_do_update(index_elements=[key], set_=row, where=when)
    else:
        lite = sqlite.insert(target).values(row)
        stmt = lite.on_conflict_do_update(index_elements=[key], set_=row, where=when)
    return conn.execute(stmt.returning(target.c[key])).first() is not None
