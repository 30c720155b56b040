"""SQLite: new tags enter the substring index once per write transaction instead of from a
per-row trigger (store/search_upkeep.py says why and how), and the index no longer keeps each
row's size (`columnsize=0`: a record per row that only ranking functions read; regwatch ranks
nothing). PostgreSQL: nothing.

`tags_search_pending` holds, per account key, the first tag id not yet indexed (40: the
account's id bits, regwatch.store.dialect.ACCOUNT_ID_BITS); the insert trigger is gone, and the
delete and update triggers skip rows still pending. The index is rebuilt from `tags` once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TRIGGERS = ("tags_search_insert", "tags_search_delete", "tags_search_update")
_FTS_DELETE = "INSERT INTO tags_search(tags_search, rowid, ref) VALUES ('delete', old.id, old.ref)"
_FTS_INSERT = "INSERT INTO tags_search(rowid, ref) VALUES (new.id, new.ref)"
_FTS_TABLE = (
    "CREATE VIRTUAL TABLE tags_search USING fts5(ref, content='tags', content_rowid='id', "
    "tokenize='trigram', detail=none{options})"
)
_STILL_PENDING = (  # the row was not handed to the index yet: nothing to delete from it
    "SELECT 1 FROM tags_search_pending WHERE account_key = old.id >> 40 AND first_id <= old.id"
)
_UPKEEP_PER_COMMIT = (
    "CREATE TABLE tags_search_pending "
    "(account_key INTEGER PRIMARY KEY NOT NULL, first_id INTEGER NOT NULL)",
    "CREATE TRIGGER tags_search_delete AFTER DELETE ON tags "
    f"WHEN NOT EXISTS ({_STILL_PENDING}) BEGIN {_FTS_DELETE}; END",
    "CREATE TRIGGER tags_search_update AFTER UPDATE OF ref ON tags "
    f"WHEN NOT EXISTS ({_STILL_PENDING}) BEGIN {_FTS_DELETE}; {_FTS_INSERT}; END",
)
_UPKEEP_PER_ROW = (  # revision 0001's
    f"CREATE TRIGGER tags_search_insert AFTER INSERT ON tags BEGIN {_FTS_INSERT}; END",
    f"CREATE TRIGGER tags_search_delete AFTER DELETE ON tags BEGIN {_FTS_DELETE}; END",
    "CREATE TRIGGER tags_search_update AFTER UPDATE OF ref ON tags BEGIN "
    f"{_FTS_DELETE}; {_FTS_INSERT}; END",
)


def _replace_index(options: str) -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE tags_search")
    op.execute(_FTS_TABLE.format(options=options))
    op.execute("INSERT INTO tags_search(tags_search) VALUES ('rebuild')")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _replace_index(", columnsize=0")
    for statement in _UPKEEP_PER_COMMIT:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _replace_index("")  # also indexes whatever a writer left pending
    op.execute("DROP TABLE tags_search_pending")
    for statement in _UPKEEP_PER_ROW:
        op.execute(statement)
