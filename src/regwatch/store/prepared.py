"""Statements written in SQLAlchemy Core, compiled once per dialect, run on the driver's cursor.

Why: the scan merge runs hundreds of small repositories a second on the single writer thread,
and the Python time it spends there also holds the GIL against the event loop that talks to the
registry (docs/benchmarks.md, "Indexing"). Measured on SQLite for a one-row indexed SELECT:
building a Core statement and executing it costs ~90 µs, executing a prebuilt one ~20 µs (cache
key, parameter processing, result wrapping), the driver's own `cursor.execute` ~1.5 µs. The SQL is
still written once in Core and compiled by SQLAlchemy for each dialect, so it stays portable;
only the execution skips the layer, on the connection (and inside the transaction) that the
caller's SQLAlchemy `Connection` holds.

Parameters are plain tuples in the order of `names`; values go to the driver as they are (no
type processing): JSON columns take `json_text(value)`, booleans and integers pass through.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from itertools import chain
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Params = Sequence[Any]
# rows per multi-row INSERT: 500 x 16 columns stays well under SQLite's 32,766 variables
_ROWS_PER_INSERT = 500
_Shaper = Callable[[Params], Any]


def json_text(value: Mapping[str, Any] | None) -> str | None:
    """A JSON column's value for the driver; SQL NULL for an empty mapping (Core writes JSON
    `null` for None: readers get None from both)."""
    return json.dumps(dict(value)) if value else None


class Prepared:
    """One statement: `build(dialect_name)` gives its Core form (for dialect-specific constructs
    such as ON CONFLICT), `names` the order of the parameters callers pass."""

    def __init__(self, build: Callable[[str], ClauseElement], *names: str) -> None:
        self._build = build
        self.names = names
        self._compiled: dict[str, tuple[str, _Shaper]] = {}

    def _for(self, conn: Connection) -> tuple[str, _Shaper]:
        dialect = conn.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = self._compile(conn)
        return found

    def _compile(self, conn: Connection) -> tuple[str, _Shaper]:
        compiled = self._build(conn.dialect.name).compile(dialect=conn.dialect)
        assert isinstance(compiled, SQLCompiler)
        order = compiled.positiontup
        if order is None:  # named paramstyle (psycopg): a dict per row
            names = self.names
            return compiled.string, lambda row: dict(zip(names, row, strict=True))
        missing = set(order) - set(self.names)
        if missing:
            raise ValueError(f"parameters {sorted(missing)} not in {self.names}")
        index = [self.names.index(name) for name in order]
        if index == list(range(len(self.names))):
            return compiled.string, tuple
        return compiled.string, lambda row: tuple(row[i] for i in index)

    def rows(self, conn: Connection, params: Params = ()) -> list[Any]:
        """Execute and fetch every row (tuples)."""
        sql, shape = self._for(conn)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, shape(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def first(self, conn: Connection, params: Params = ()) -> Any | None:
        found = self.rows(conn, params)
        return found[0] if found else None

    def run(self, conn: Connection, params: Params = ()) -> int:
        """Execute a statement that returns no rows; its row count."""
        sql, shape = self._for(conn)
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, shape(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert_rows(self, conn: Connection, rows: Sequence[Params]) -> None:
        """Run this INSERT for `rows`: on SQLite as multi-row INSERTs, elsewhere as executemany.

        Why: each statement runs the table's AFTER INSERT trigger in its own statement
        transaction; with the per-row search-index trigger of revision 0001, which made FTS5
        write a segment per statement, 50 rows took ~1 ms by executemany and ~0.3 ms as one
        statement (docs/benchmarks.md). The index is now kept per commit (search_upkeep.py)."""
        if conn.dialect.name != "sqlite":
            self.run_many(conn, rows)
            return
        sql, shape = self._for(conn)
        if shape is not tuple:
            raise ValueError("insert_rows needs the parameters in statement order")
        head, values = sql.split(" VALUES ", 1)
        cursor = conn.connection.cursor()
        try:
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                part = rows[start : start + _ROWS_PER_INSERT]
                statement = f"{head} VALUES {','.join([values] * len(part))}"
                cursor.execute(statement, list(chain.from_iterable(part)))
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Iterable[Params]) -> None:
        """Execute once per parameter row (the driver's executemany: one call, no round trip per
        row on SQLite, pipelined on psycopg)."""
        sql, shape = self._for(conn)
        shaped = [shape(row) for row in rows] if shape is not tuple else list(rows)
        if not shaped:
            return
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(sql, shaped)
        finally:
            cursor.close()


@contextmanager
def savepoint(conn: Connection, name: str = "regwatch_call") -> Iterator[Connection]:
    """A savepoint issued on the driver: the block's writes are undone if it raises, and the
    enclosing transaction goes on. (`Connection.begin_nested` compiles its SAVEPOINT and RELEASE
    statements on every use: ~0.2 ms a pair, a sixth of a small repository's merge.)"""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
            cursor.execute(f"RELEASE SAVEPOINT {name}")
            raise
        cursor.execute(f"RELEASE SAVEPOINT {name}")
    finally:
        cursor.close()
