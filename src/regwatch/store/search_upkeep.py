"""SQLite: new tags enter the substring index (the FTS5 table `tags_search`) once per write
transaction, in one statement, rather than one row at a time from a trigger.

Why: FTS5 writes the terms it has gathered as a new segment at every savepoint and statement
transaction, then spends its automerge work folding those segments together. Each repository's
merge runs in its own savepoint inside a write batch (`Store.write_batch`), so an insert trigger
paid one segment per repository: a fifth of the writer thread's CPU in a tags-only scan, and the
writer thread is what a scan waits on (docs/benchmarks.md, "Indexing"; measured with everything
else equal: 0.30 -> 0.26 s for 200 repositories x 50 tags).

How (migration 0004): the insert trigger only notes the new row's id in `tags_search_pending`,
a plain table, so the note is undone with the row when a savepoint rolls back. Just before each
write transaction of the store commits, `index_pending_tags` moves the noted rows into the
index and clears the notes: readers never see a tag that the index lacks. The delete and update
triggers leave a row that is still pending to that step (FTS5 must never be told to delete what
it was not given). PostgreSQL maintains its own substring index: nothing to do there.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

PENDING_TABLE = "tags_search_pending"
_ANY_PENDING = "SELECT 1 FROM tags_search_pending LIMIT 1"
_INDEX_PENDING = (
    "INSERT INTO tags_search(rowid, ref) SELECT tags.id, tags.ref FROM tags_search_pending "
    "JOIN tags ON tags.id = tags_search_pending.id"
)
_CLEAR_PENDING = "DELETE FROM tags_search_pending"


def index_pending_tags(conn: Connection) -> None:
    """Put the tags inserted by this transaction into the search index (inside the transaction;
    a failure fails the commit, so the tags and their index entries stay together)."""
    if conn.exec_driver_sql(_ANY_PENDING).first() is None:
        return
    conn.exec_driver_sql(_INDEX_PENDING)
    conn.exec_driver_sql(_CLEAR_PENDING)


def index_tags_before_commit(writer: Engine) -> None:
    """Run `index_pending_tags` before every commit on the SQLite `writer` engine (its schema
    must already have the pending table: register after the schema check, not before
    migrations)."""
    if not event.contains(writer, "commit", index_pending_tags):
        event.listen(writer, "commit", index_pending_tags)
