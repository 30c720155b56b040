"""PostgreSQL substring index: GIN over (account, ref with its punctuation as letters), in place
of the plain pg_trgm GIN over ref. SQLite: nothing (its FTS5 trigram index already indexes every
character).

Why (bench/scale.py's 1M-image store; `store/search.py` has the query side):
- pg_trgm takes only letters and digits as trigrams: `ref` is cut into words at `.`, `:`, `/`,
  `-` and `_`, so a `q` such as `4.example` or `136:0.11` only asks the index for `example` or
  `136` — every tag of the store, or tens of thousands — and re-checks them all (32 ms for the
  10 tags of `136:0.11`). Indexing `translate(ref, '.:/-_', 'qjzxv')` makes each ref one word,
  whose trigrams are every 3 characters of it, as on SQLite: 1.4 ms. A match of `q` is always a
  match of the translated `q` in the translated ref (the translation is character by
  character), so nothing is missed; the query re-checks `ref LIKE` on the few candidates.
- `account` first (btree_gin): "no tag of these accounts contains `q`" is answered inside the
  index, without fetching a row — what the search needs to skip whole accounts (`registry4`
  walked 800,000 tags of the accounts before it: 157 ms; now ~10 ms).
Both extensions ship with PostgreSQL (contrib) and are trusted: the database owner may create
them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# must stay equal to regwatch.store.dialect.SEARCH_TEXT (the planner matches the expression)
SEARCH_TEXT = "translate(ref, '.:/-_', 'qjzxv')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    op.execute(
        f"CREATE INDEX ix_tags_account_search ON tags USING gin (account, {SEARCH_TEXT} "
        "gin_trgm_ops)"
    )
    op.execute("DROP INDEX IF EXISTS ix_tags_ref_trgm")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX ix_tags_ref_trgm ON tags USING gin (ref gin_trgm_ops)")
    op.execute("DROP INDEX IF EXISTS ix_tags_account_search")
