"""SQLite: no tag-name index (`ix_tags_tag`). PostgreSQL: nothing.

Why: it is the only index of `tags` whose leading column is not the account and repository, so
every repository a scan merges inserts into pages all over it, and each write transaction
dirties and writes many of them: 9-18 % of the store writer's merge work for new tags
(bench/merge_indexes.py, docs/benchmarks.md "Sixth measurement"). The one lookup it served,
`images/find` by tag without a repository, goes through the trigram search index on SQLite
(`:tag` is in the tag's ref; the exact tag is then checked), as `q` does; one-character tags,
whose `:t` holds no trigram, get a partial index of their own (`ix_tags_short_tag`: a handful of
rows, nothing for the writer).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

SHORT_TAG_SQL = "length(tag) < 2"  # as regwatch.store.schema's, at this revision

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_tags_tag", table_name="tags")
    op.create_index("ix_tags_short_tag", "tags", ["tag"], sqlite_where=sa.text(SHORT_TAG_SQL))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_tags_short_tag", table_name="tags")
    op.create_index("ix_tags_tag", "tags", ["tag"])
