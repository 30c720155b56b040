"""WAL checkpoints of the SQLite store on a background thread, not inside the writer's commits.

SQLite's automatic checkpoint runs in the commit that takes the write-ahead log past 1,000 pages,
on the committing connection: it copies the log's pages into the database file and syncs both
files (with `synchronous=NORMAL` these are the only syncs SQLite does). Here that connection is
the store's single writer, which bounds a scan (docs/benchmarks.md, "Indexing"): every write
queued behind the commit waits for the disk, and on a disk shared with other work a sync can take
tens of milliseconds.

So the writer connection checkpoints only as a safety valve (`SAFETY_PAGES`, should this thread
fall behind), and each commit wakes `BackgroundCheckpointer`, which runs a PASSIVE checkpoint on
its own connection at most every `interval` seconds. A PASSIVE checkpoint never waits for and
never blocks readers or the writer; it copies what no reader still needs, and the writer starts
the log over once everything was copied, as with automatic checkpoints. The connection releases
the GIL while SQLite works, so the writer and the event loop go on meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

SAFETY_PAGES = 20_000  # ~80 MB of log: the writer checkpoints itself only past this
INTERVAL_SECONDS = 0.2
log = logging.getLogger(__name__)


class BackgroundCheckpointer:
    """Checkpoints the SQLite database at `path` when woken (see the module docstring)."""

    def __init__(self, path: str | Path, *, interval: float = INTERVAL_SECONDS) -> None:
        self.path = str(path)
        self.interval = interval
        self.checkpoints = 0  # completed PASSIVE checkpoints (for tests and benchmarks)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the background thread is alive (started by the first commit, until close)."""
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """After a commit (called on the writer thread: cheap, never waits for the disk)."""
        if self._thread is None:
            self._start()
        self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="regwatch-store-checkpoint", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first)."""
        with self._lock:
            self._closed.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        uri = Path(self.path).resolve().as_uri() + "?mode=rw"  # never create: the store did
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as exc:
            log.warning("no background checkpoints for %s: %s", self.path, exc)
            return
        try:
            while True:
                self._wake.wait()
                if self._closed.is_set():
                    return
                self._wake.clear()
                self._checkpoint(conn)
                if self._closed.wait(self.interval):  # at most one checkpoint per interval
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error as exc:  # the next commit wakes us again; the valve still holds
            log.debug("background checkpoint of %s failed: %s", self.path, exc)


def checkpoint_in_background(writer: Engine, path: str | Path) -> BackgroundCheckpointer:
    """Give the writer engine's connections a background checkpointer (and the safety valve)."""
    checkpointer = BackgroundCheckpointer(path)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={SAFETY_PAGES}")

    def on_commit(_conn: Any) -> None:
        # SQLAlchemy calls this just before the driver commits: a checkpoint that starts first
        # copies what was committed before, and the next commit (or the close) takes the rest
        checkpointer.wake()

    event.listen(writer, "connect", on_connect)
    event.listen(writer, "commit", on_commit)
    return checkpointer
