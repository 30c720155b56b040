"""SQLAlchemy engines for the store, with the SQLite settings that make one writer + many readers
work: WAL (readers never wait for the writer), `synchronous=NORMAL` (durable at checkpoints, safe
with WAL), `busy_timeout`, foreign keys on, and explicit transactions.

SQLite's Python driver opens transactions lazily and as DEFERRED, so a transaction that reads and
then writes can fail with "database is locked" without waiting for the busy timeout (it cannot
upgrade its read lock while another writer holds the lock). We take manual control: the driver is
put in autocommit mode and SQLAlchemy's "begin" event issues `BEGIN IMMEDIATE` on the writer engine
(take the write lock up front, waiting up to the busy timeout) and a plain `BEGIN` on the reader
engine (a consistent snapshot for multi-statement reads, never blocked by the writer under WAL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from regwatch.store.checkpoint import BackgroundCheckpointer, checkpoint_in_background
from regwatch.store.url import ensure_sqlite_directory, parse_store_url, sqlite_path

BUSY_TIMEOUT_MS = 10_000
# Readers map the file instead of copying pages into each connection's 2 MB cache: the page
# cache is then the OS's, shared by the connections (address space only, not memory). On the
# 1M-image bench store a `q` lookup's SQL took 0.23 -> 0.20 ms (mean of 1,500), p99 1.6 -> 1.1.
READER_MMAP_BYTES = 1 << 30


@dataclass(frozen=True)
class Engines:
    """The engine that writes and the engine that reads (the same object on PostgreSQL)."""

    writer: Engine
    reader: Engine
    is_sqlite: bool
    checkpointer: BackgroundCheckpointer | None = None  # SQLite file: WAL checkpoints

    def dispose(self) -> None:
        if self.checkpointer is not None:  # before the writer: its close checkpoints the rest
            self.checkpointer.close()
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()


def make_engines(url: str, *, pool_size: int = 5) -> Engines:
    """Engines for `url` (already normalised by `regwatch.store.url.normalize_store_url`)."""
    if parse_store_url(url).get_backend_name() != "sqlite":
        engine = create_engine(url, pool_size=pool_size, pool_pre_ping=True)
        return Engines(writer=engine, reader=engine, is_sqlite=False)
    ensure_sqlite_directory(url)
    path = sqlite_path(url)
    if path is None:  # in-memory: one shared connection, or nothing would persist
        engine = _sqlite_engine(url, begin="BEGIN IMMEDIATE", poolclass=StaticPool)
        return Engines(writer=engine, reader=engine, is_sqlite=True)
    writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1, max_overflow=0)
    checkpointer = checkpoint_in_background(writer, path)
    reader = _sqlite_engine(url, begin="BEGIN", pool_size=pool_size, max_overflow=pool_size)
    event.listen(reader, "connect", _on_reader_connect)
    return Engines(writer=writer, reader=reader, is_sqlite=True, checkpointer=checkpointer)


def _sqlite_engine(url: str, *, begin: str, **pool_args: Any) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        **pool_args,
    )
    event.listen(engine, "connect", _on_sqlite_connect)

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    event.listen(engine, "begin", on_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit: we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _on_reader_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA mmap_size={READER_MMAP_BYTES}")
