"""Initial schema: accounts, repositories, tagged images, metadata caches, scan runs, staging,
tag history, events + outbox deliveries, leases, and the substring search index.

This file is frozen: later changes go into new revisions. A test checks that migrating an empty
database to head gives exactly `regwatch.store.schema.metadata`.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ACCOUNT, REPOSITORY, TAG, DIGEST, REGISTRY = 128, 255, 128, 200, 255
REF = REGISTRY + REPOSITORY + TAG + 2
SORT_KEY = TAG + 3 * 27 + 64
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _sorted(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _ms(name: str, nullable: bool = True) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), nullable=nullable)


def _fk_account(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account"], ["accounts.name"], name=f"fk_{table}_account_accounts", ondelete="CASCADE"
    )


def upgrade() -> None:
    _index_tables()
    _cache_tables()
    _scan_tables()
    _event_tables()
    _search_index()


def _index_tables() -> None:
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(ACCOUNT), nullable=False),
        sa.Column("key", sa.Integer(), nullable=False),
        sa.Column("registry", sa.String(REGISTRY), nullable=False),
        _ms("created_at", nullable=False),
        _ms("catalog_ok_at"),
        sa.Column("catalog_error", sa.Text()),
        _ms("catalog_error_at"),
        sa.PrimaryKeyConstraint("name", name="pk_accounts"),
        sa.UniqueConstraint("key", name="uq_accounts_key"),
    )
    op.create_table(
        "repositories",
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("name", _sorted(REPOSITORY), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tag_count", sa.Integer(), nullable=False),
        _ms("last_ok_at"),
        _ms("last_scan_at"),
        sa.Column("last_error", sa.Text()),
        _ms("last_error_at"),
        _ms("changed_at"),
        sa.Column("scan_id", sa.String(36)),
        sa.PrimaryKeyConstraint("account", "name", name="pk_repositories"),
        _fk_account("repositories"),
    )
    op.create_table(
        "tags",
        sa.Column("id", BigId, nullable=False, autoincrement=False),
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("repository", _sorted(REPOSITORY), nullable=False),
        sa.Column("tag", _sorted(TAG), nullable=False),
        sa.Column("registry", sa.String(REGISTRY), nullable=False),
        sa.Column("ref", sa.String(REF), nullable=False),
        sa.Column("digest", sa.String(DIGEST)),
        sa.Column("index_digest", sa.String(DIGEST)),
        sa.Column("platform_digests", sa.JSON()),
        _ms("created_ms"),
        sa.Column("labels", sa.JSON()),
        _ms("first_seen", nullable=False),
        _ms("last_seen", nullable=False),
        _ms("last_changed", nullable=False),
        sa.Column("semver_key", _sorted(SORT_KEY), nullable=False),
        _ms("date_key", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tags"),
        sa.UniqueConstraint("account", "repository", "tag", name="uq_tags_account_repository_tag"),
        sa.ForeignKeyConstraint(
            ["account", "repository"],
            ["repositories.account", "repositories.name"],
            name="fk_tags_account_repositories",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_tags_account_repository_semver_key_tag",
        "tags",
        ["account", "repository", "semver_key", "tag"],
    )
    op.create_index(
        "ix_tags_account_repository_date_key_tag",
        "tags",
        ["account", "repository", "date_key", "tag"],
    )
    op.create_index("ix_tags_tag", "tags", ["tag"])
    op.create_table(
        "tag_history",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("repository", _sorted(REPOSITORY), nullable=False),
        sa.Column("tag", _sorted(TAG), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(DIGEST)),
        sa.Column("previous_digest", sa.String(DIGEST)),
        _ms("at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tag_history"),
        _fk_account("tag_history"),
    )
    op.create_index(
        "ix_tag_history_account_repository_tag_id",
        "tag_history",
        ["account", "repository", "tag", "id"],
    )


def _cache_tables() -> None:
    op.create_table(
        "manifest_cache",
        sa.Column("digest", sa.String(DIGEST), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger()),
        sa.Column("config_digest", sa.String(DIGEST)),
        sa.Column("platforms", sa.JSON()),
        sa.Column("annotations", sa.JSON()),
        _ms("stored_at", nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_manifest_cache"),
    )
    op.create_table(
        "config_cache",
        sa.Column("digest", sa.String(DIGEST), nullable=False),
        _ms("created_ms"),
        sa.Column("labels", sa.JSON()),
        sa.Column("os", sa.String(64)),
        sa.Column("architecture", sa.String(64)),
        _ms("stored_at", nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_config_cache"),
    )


def _scan_tables() -> None:
    op.create_table(
        "scan_runs",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        _ms("started_at", nullable=False),
        _ms("finished_at"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("repositories_ok", sa.Integer(), nullable=False),
        sa.Column("repositories_failed", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON()),
        sa.Column("holder", sa.String(255)),
        sa.PrimaryKeyConstraint("id", name="pk_scan_runs"),
        _fk_account("scan_runs"),
    )
    op.create_index("ix_scan_runs_account_started_at", "scan_runs", ["account", "started_at"])
    op.create_table(
        "scan_staging",
        sa.Column("scan_id", sa.String(36), nullable=False),
        sa.Column("tag", _sorted(TAG), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("repository", _sorted(REPOSITORY), nullable=False),
        sa.Column("ref", sa.String(REF), nullable=False),
        sa.Column("semver_key", _sorted(SORT_KEY), nullable=False),
        sa.Column("has_metadata", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(DIGEST)),
        sa.Column("index_digest", sa.String(DIGEST)),
        sa.Column("platform_digests", sa.JSON()),
        _ms("created_ms"),
        sa.Column("labels", sa.JSON()),
        sa.Column("event_id", sa.String(36)),
        sa.Column("event_kind", sa.String(32)),
        sa.PrimaryKeyConstraint("scan_id", "tag", name="pk_scan_staging"),
    )
    op.create_index("ix_scan_staging_account_repository", "scan_staging", ["account", "repository"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        _ms("expires_at", nullable=False),
        _ms("acquired_at", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def _event_tables() -> None:
    op.create_table(
        "events",
        sa.Column("seq", BigId, nullable=False, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("registry", sa.String(REGISTRY), nullable=False),
        sa.Column("repository", _sorted(REPOSITORY), nullable=False),
        sa.Column("tag", _sorted(TAG), nullable=False),
        sa.Column("digest", sa.String(DIGEST)),
        sa.Column("previous_digest", sa.String(DIGEST)),
        _ms("created_at", nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
    )
    op.create_index("ix_events_account_repository_seq", "events", ["account", "repository", "seq"])
    op.create_table(
        "deliveries",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("event_seq", sa.BigInteger(), nullable=False),
        sa.Column("sink", sa.String(128), nullable=False),
        sa.Column("account", sa.String(ACCOUNT), nullable=False),
        sa.Column("repository", _sorted(REPOSITORY), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ms("next_attempt_at", nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("lease_holder", sa.String(255)),
        _ms("lease_expires_at"),
        _ms("delivered_at"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("event_seq", "sink", name="uq_deliveries_event_seq_sink"),
        sa.ForeignKeyConstraint(
            ["event_seq"], ["events.seq"], name="fk_deliveries_event_seq_events", ondelete="CASCADE"
        ),
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_deliveries_sink_account_repository_event_seq",
        "deliveries",
        ["sink", "account", "repository", "event_seq"],
    )


def _search_index() -> None:
    """Substring search over tags.ref: FTS5 trigram (SQLite) or pg_trgm GIN (PostgreSQL).

    SQLite: an external-content FTS5 table kept in step by triggers; `detail=none` keeps it ~40%
    smaller, and queries AND the trigrams and re-check `ref LIKE` (no phrase queries needed).
    """
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_SEARCH:
            op.execute(statement)
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_tags_ref_trgm ON tags USING gin (ref gin_trgm_ops)")


_SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE tags_search USING fts5(ref, content='tags', content_rowid='id', "
    "tokenize='trigram', detail=none)",
    "CREATE TRIGGER tags_search_insert AFTER INSERT ON tags BEGIN "
    "INSERT INTO tags_search(rowid, ref) VALUES (new.id, new.ref); END",
    "CREATE TRIGGER tags_search_delete AFTER DELETE ON tags BEGIN "
    "INSERT INTO tags_search(tags_search, rowid, ref) VALUES ('delete', old.id, old.ref); END",
    "CREATE TRIGGER tags_search_update AFTER UPDATE OF ref ON tags BEGIN "
    "INSERT INTO tags_search(tags_search, rowid, ref) VALUES ('delete', old.id, old.ref); "
    "INSERT INTO tags_search(rowid, ref) VALUES (new.id, new.ref); END",
)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS tags_search")
    for table in (
        "deliveries",
        "events",
        "leases",
        "scan_staging",
        "scan_runs",
        "config_cache",
        "manifest_cache",
        "tag_history",
        "tags",
        "repositories",
        "accounts",
    ):
        op.drop_table(table)
