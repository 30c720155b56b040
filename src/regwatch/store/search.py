"""`q` with a limit on PostgreSQL: the first `limit` matching tags in id order, without reading
every match and without walking every tag before the first match.

A plain `ref LIKE '%q%' ORDER BY id LIMIT n` leaves PostgreSQL two plans, each slow on a large
part of the `q`s (bench/scale.py's 1M-image store; 300 substrings drawn as bench/api.py does):
- walk the primary key in id order and filter: fast when matches are dense from the start, but
  the matches of a `q` usually sit together (one account's registry, one repository), and
  `registry4` walked the 800,000 tags of the accounts before it (157 ms);
- the substring index, then sort: every match is fetched and re-checked (116 ms for `example`,
  which all 1M tags hold). The planner picks one from a selectivity that cannot see where the
  matches are: mean 35 ms, p90 136 ms, p99 288 ms.

So the search takes two bounded steps:
1. probe: for each account (in key order, so in id order), the first `PROBE_ROWS` tags of its
   id range, in id order, filtered — an index range scan of at most that many rows each;
2. if the probes found `limit` matches before any account's unprobed rest (a gap) — the usual
   case for a common `q` — that is the answer. Otherwise the gaps before that point are
   searched through the substring index only (bitmap scans; migration 0003: its `account`
   column answers "none in these accounts" without fetching a row), and the first `limit` of
   those matches merged with the probes' are the answer.
The result is exactly the first `limit` matches by id, as on SQLite.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, TextualSelect, column, text
from sqlalchemy.engine import Connection

from regwatch.store.dialect import ACCOUNT_ID_BITS, SEARCH_TEXT, chars_pattern, like_pattern

PROBE_ROWS = 300  # 1,000: mean 12-15 ms, 300: 7.5-10 ms (the 300 substrings above)
_SPAN = 1 << ACCOUNT_ID_BITS
_PROBE_HEAD = (column("probe_key", BigInteger), column("probe_name", String))
_PROBE_TAIL = (column("probe_last", BigInteger), column("probe_id", BigInteger))


@functools.cache
def _statement(
    sql: Callable[[Sequence[Any]], str], columns: tuple[Any, ...], head: tuple[Any, ...] = ()
) -> TextualSelect:
    """`sql(columns)` as a statement whose result columns are `head` + `columns`, typed (JSON
    decoded as usual); built once (SQLAlchemy then caches its compiled form)."""
    return text(sql(columns)).columns(*head, *columns)


def _probe_sql(columns: Sequence[Any]) -> str:
    """Per account (key in [:klow, :khigh]): the id of its PROBE_ROWS-th tag (or of its last),
    and its matches up to that id, at most :limit, in id order."""
    names = ", ".join(c.name for c in columns)
    picked = ", ".join(f"m.{c.name}" for c in columns)
    return f"""
        SELECT a.key, a.name, w.last_id, m.id, {picked}
        FROM accounts AS a
        CROSS JOIN LATERAL (
            SELECT max(x.id) AS last_id FROM (
                SELECT id FROM tags
                WHERE id BETWEEN a.key * {_SPAN} AND a.key * {_SPAN} + {_SPAN - 1}
                ORDER BY id LIMIT :window
            ) AS x
        ) AS w
        LEFT JOIN LATERAL (
            SELECT id, {names} FROM tags
            WHERE id BETWEEN a.key * {_SPAN} AND w.last_id AND ref LIKE :pattern ESCAPE '\\'
            ORDER BY id LIMIT :limit
        ) AS m ON true
        WHERE a.key BETWEEN :klow AND :khigh
        ORDER BY a.key, m.id
    """  # noqa: S608  (schema column names and constants; values are bound)


def search_postgres(
    conn: Connection,
    columns: Sequence[Any],
    q: str,
    limit: int,
    keys: tuple[int, int] = (0, 2**31 - 1),
) -> list[tuple[Any, ...]]:
    """The first `limit` tags (as `columns` tuples) whose ref contains `q` (case-insensitive),
    in id order, among the accounts whose key is in `keys` (inclusive)."""
    if limit <= 0:
        return []
    params = {"pattern": like_pattern(q.lower()), "limit": limit, "window": PROBE_ROWS}
    params.update(klow=keys[0], khigh=keys[1])
    probe = _statement(_probe_sql, tuple(columns), _PROBE_HEAD + _PROBE_TAIL)
    gaps = _Gaps(conn, columns, q)
    found: list[tuple[Any, ...]] = []
    try:
        for account, end, matches in _by_account(conn.execute(probe, params).all()):
            found += matches
            if len(found) < limit and end is not None:  # the account's rest comes next
                found += gaps.first(account, end, limit - len(found))
            if len(found) >= limit:
                break
    finally:
        gaps.close()
    return found[:limit]


def _by_account(rows: Sequence[Any]) -> Iterator[tuple[str, tuple[int, int] | None, list[Any]]]:
    """The probe's rows per account, in key order: the account, its unprobed id range (None
    when it has no tags) and the probe's matches (`columns` tuples, in id order)."""
    for key, group in itertools.groupby(rows, key=lambda row: row[0]):
        first, *others = list(group)
        last = first[2]
        rest = None if last is None else (int(last) + 1, int(key) * _SPAN + _SPAN - 1)
        matches = [tuple(row[4:]) for row in (first, *others) if row[3] is not None]
        yield str(first[1]), rest, matches


class _Gaps:
    """The first matches in the unprobed rest of an account, through the substring index alone
    (bitmap scans: an index walk in id order is what the probes bounded; no parallel workers:
    starting them costs more than an empty answer). Its `account` column answers "none here"
    without fetching a row.

    First the ids of at most `CAP` (or `count`) matches, in whatever order the heap holds them:
    fewer, and they are all there is. Otherwise the first `count` by id are at or below the
    `count`-th smallest of those: a range of at most `WALK` ids is read whole (the primary key's
    bitmap, filtered; dense matches, such as a team's repositories, come after a few
    repositories), a larger one is searched again through the index (few more matches lie
    there: the heap is mostly in id order). The planner settings this changes for the
    transaction are restored by `close`."""

    CAP = 1000
    WALK = 20_000

    def __init__(self, conn: Connection, columns: Sequence[Any], q: str) -> None:
        self.conn, self.columns = conn, columns
        self.params: dict[str, Any] = {"pattern": like_pattern(q.lower())}
        self.params["chars"] = chars_pattern(q)
        self.saved: Any = None

    def first(self, account: str, ids: tuple[int, int], count: int) -> list[tuple[Any, ...]]:
        if self.saved is None:
            self.saved = self.conn.exec_driver_sql(_SAVE).one()
            self._set("off", "off", "0")
        params = {**self.params, "account": account, "low": ids[0], "high": ids[1]}
        cap = max(self.CAP, count)
        found = self._ids({**params, "limit": cap})
        if len(found) >= cap:
            params["high"] = sorted(found)[count - 1]
            if params["high"] - ids[0] <= self.WALK:  # ids are dense: at most WALK rows
                return self._rows(_walk_sql, {**params, "limit": count})
            found = self._ids({**params, "limit": count})
        wanted = sorted(found)[:count]
        return self._rows(_by_id_sql, {"ids": wanted}) if wanted else []

    def _rows(
        self, sql: Callable[[Sequence[Any]], str], params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        statement = _statement(sql, tuple(self.columns))
        return [tuple(row) for row in self.conn.execute(statement, params)]

    def _ids(self, params: dict[str, Any]) -> list[int]:
        return [int(found) for found in self.conn.execute(_IDS, params).scalars()]

    def _set(self, index: str, seq: str, workers: str) -> None:
        self.conn.exec_driver_sql(_SET, {"index": index, "seq": seq, "workers": workers})

    def close(self) -> None:
        if self.saved is not None:
            self._set(*self.saved)


_SAVE = (
    "SELECT current_setting('enable_indexscan'), current_setting('enable_seqscan'), "
    "current_setting('max_parallel_workers_per_gather')"
)
_SET = (
    "SELECT set_config('enable_indexscan', %(index)s, true), "
    "set_config('enable_seqscan', %(seq)s, true), "
    "set_config('max_parallel_workers_per_gather', %(workers)s, true)"
)
_IDS = text(
    f"""SELECT id FROM tags WHERE account = :account AND {SEARCH_TEXT} LIKE :chars ESCAPE '\\'
    AND ref LIKE :pattern ESCAPE '\\' AND id + 0 BETWEEN :low AND :high LIMIT :limit"""  # noqa: S608
)


def _by_id_sql(columns: Sequence[Any]) -> str:
    names = ", ".join(c.name for c in columns)
    return f"SELECT {names} FROM tags WHERE id = ANY(:ids) ORDER BY id"  # noqa: S608


def _walk_sql(columns: Sequence[Any]) -> str:
    names = ", ".join(c.name for c in columns)
    return (
        f"SELECT {names} FROM tags WHERE id BETWEEN :low AND :high "  # noqa: S608
        "AND ref LIKE :pattern ESCAPE '\\' ORDER BY id LIMIT :limit"
    )
