"""SQLite: new tags enter the substring index (the FTS5 table `tags_search`) once per write
transaction, in one statement, rather than one row at a time from a trigger.

Why: FTS5 writes the terms it has gathered as a new segment at every savepoint and statement
transaction, then spends automerge work folding those segments together. Each repository's
merge runs in its own savepoint inside a write batch (`Store.write_batch`), so an insert trigger
paid one segment per repository: a fifth of the writer thread's CPU in a tags-only scan, and the
writer thread is what a scan waits on (docs/benchmarks.md, "Indexing").

How (migration 0004): whatever inserts into `tags` gives its rows the ids above `last_tag_id`,
which also notes them (a writer that allocates ids otherwise, such as bench/store_find.py's
loader, calls `note_new_tags` itself). `tags_search_pending` then holds, per account, the first
id not yet indexed; every row of the account from there up is new in this transaction (no row
lies above the largest id, and the noted first id only ever moves down). The note is a row
written in the caller's savepoint, so it is undone with the tags when the savepoint rolls back.
Just before each write transaction of the store commits, `index_pending_tags` indexes those
rows and clears the notes, so readers never see a tag that the index lacks. The delete and
update triggers leave a row that is still pending to that step (FTS5 must never be told to
delete what it was not given). No trigger runs per inserted row any more: one note per insert
statement replaces it.

PostgreSQL maintains its own substring index: both functions do nothing there.
"""

from __future__ import annotations

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.engine import Connection, Engine

from regwatch.store.dialect import ACCOUNT_ID_BITS, account_id_range
from regwatch.store.prepared import Prepared
from regwatch.store.schema import tags

_LAST_ID = Prepared(
    lambda _: select(func.coalesce(func.max(tags.c.id), bindparam("low"))).where(
        tags.c.id.between(bindparam("low"), bindparam("high"))
    ),
    "low",
    "high",
)

_NOTE = (
    "INSERT INTO tags_search_pending (account_key, first_id) VALUES (?, ?) "
    "ON CONFLICT (account_key) DO UPDATE SET first_id = min(first_id, excluded.first_id)"
)
_NOTED = "regwatch_tags_to_index"  # in the connection's info: a note since the last commit
_INDEX_PENDING = (  # up to the account's last id: ((key + 1) << ACCOUNT_ID_BITS) - 1
    "INSERT INTO tags_search (rowid, ref) SELECT tags.id, tags.ref FROM tags_search_pending "
    "JOIN tags ON tags.id BETWEEN tags_search_pending.first_id "
    "AND ((tags_search_pending.account_key + 1) << 40) - 1"
)
_CLEAR_PENDING = "DELETE FROM tags_search_pending"
assert ACCOUNT_ID_BITS == 40, "the SQL above and migration 0004's triggers spell it out"


def last_tag_id(conn: Connection, account_key: int) -> int:
    """The largest tag id of the account (its lowest id when it has none): give new tags the
    ids above it, in this transaction. They are noted for the search index (`note_new_tags`)."""
    last_id = int(_LAST_ID.rows(conn, account_id_range(account_key))[0][0])
    note_new_tags(conn, account_key, last_id)
    return last_id


def note_new_tags(conn: Connection, account_key: int, last_id: int) -> None:
    """Call before inserting tags of the account with `account_key` whose largest id is now
    `last_id` (the account's lowest id when it has none): the rows inserted above it by this
    transaction are indexed before it commits."""
    if conn.dialect.name != "sqlite":
        return
    cursor = conn.connection.cursor()
    try:
        cursor.execute(_NOTE, (account_key, last_id + 1))
    finally:
        cursor.close()
    conn.info[_NOTED] = True


def index_pending_tags(conn: Connection) -> None:
    """Put the tags inserted by this transaction into the search index (inside the transaction;
    a failure fails the commit, so the tags and their index entries stay together). Nothing to
    do, and no statement, for a transaction that noted no tags (most of the service's: leases,
    the outbox); a note undone by a rollback only costs the next commit an empty pass."""
    if not conn.info.pop(_NOTED, False):
        return
    conn.exec_driver_sql(_INDEX_PENDING)
    conn.exec_driver_sql(_CLEAR_PENDING)


def index_tags_before_commit(writer: Engine) -> None:
    """Run `index_pending_tags` before every commit on the SQLite `writer` engine (its schema
    must already have the pending table: register after the schema check, not before
    migrations)."""
    if not event.contains(writer, "commit", index_pending_tags):
        event.listen(writer, "commit", index_pending_tags)
