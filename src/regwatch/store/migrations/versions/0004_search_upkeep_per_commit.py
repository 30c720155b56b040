"""SQLite: new tags enter the substring index once per write transaction instead of from a
per-row trigger (store/search_upkeep.py says why and how). PostgreSQL: nothing.

The insert trigger now notes the row in `tags_search_pending`; the delete and update triggers
skip rows still noted there. Rows already indexed stay as they are.

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
_UPKEEP_PER_COMMIT = (
    "CREATE TABLE tags_search_pending (id INTEGER PRIMARY KEY NOT NULL)",
    "CREATE TRIGGER tags_search_insert AFTER INSERT ON tags BEGIN "
    "INSERT INTO tags_search_pending(id) VALUES (new.id); END",
    "CREATE TRIGGER tags_search_delete AFTER DELETE ON tags BEGIN "
    "INSERT INTO tags_search(tags_search, rowid, ref) SELECT 'delete', old.id, old.ref "
    "WHERE NOT EXISTS (SELECT 1 FROM tags_search_pending WHERE id = old.id); "
    "DELETE FROM tags_search_pending WHERE id = old.id; END",
    "CREATE TRIGGER tags_search_update AFTER UPDATE OF ref ON tags "
    "WHEN NOT EXISTS (SELECT 1 FROM tags_search_pending WHERE id = old.id) BEGIN "
    "INSERT INTO tags_search(tags_search, rowid, ref) VALUES ('delete', old.id, old.ref); "
    "INSERT INTO tags_search(rowid, ref) VALUES (new.id, new.ref); END",
)
_UPKEEP_PER_ROW = (  # revision 0001's
    f"CREATE TRIGGER tags_search_insert AFTER INSERT ON tags BEGIN {_FTS_INSERT}; END",
    f"CREATE TRIGGER tags_search_delete AFTER DELETE ON tags BEGIN {_FTS_DELETE}; END",
    "CREATE TRIGGER tags_search_update AFTER UPDATE OF ref ON tags BEGIN "
    f"{_FTS_DELETE}; {_FTS_INSERT}; END",
)


def _drop_triggers() -> None:
    for name in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _drop_triggers()
    for statement in _UPKEEP_PER_COMMIT:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(  # whatever a writer left pending (none, when every commit went through regwatch)
        "INSERT INTO tags_search(rowid, ref) SELECT tags.id, tags.ref FROM tags_search_pending "
        "JOIN tags ON tags.id = tags_search_pending.id"
    )
    _drop_triggers()
    op.execute("DROP TABLE tags_search_pending")
    for statement in _UPKEEP_PER_ROW:
        op.execute(statement)
