"""The store's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

Conventions:
- every timestamp is an integer count of milliseconds since the epoch, UTC (`*_at`, `*_ms`,
  `first_seen`…): the same type and the same comparisons on both backends, no time zone surprises
  (SQLite has no time zone aware type); `regwatch.store.records` turns them into aware datetimes;
- text that is sorted (repository names, tags, sort keys) uses byte order: SQLite's default BINARY
  collation, and the "C" collation on PostgreSQL (whose default collation is locale-aware);
- labels and platform digests are JSON;
- the substring search index is dialect-specific and not declared here: see
  `regwatch.store.dialect` (an FTS5 trigram table on SQLite, a pg_trgm GIN index on PostgreSQL).

The migration `versions/0001_initial.py` creates exactly these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def sorted_text(length: int) -> TypeEngine[str]:
    """A string compared byte-wise on every backend."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# An auto-incrementing 64-bit key; on SQLite it must be spelled INTEGER to alias the rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Millis = BigInteger
ACCOUNT = 128
REPOSITORY = 255
TAG = 128
DIGEST = 200
REGISTRY = 255
REF = REGISTRY + REPOSITORY + TAG + 2
SORT_KEY = TAG + 3 * 27 + 64

accounts = Table(
    "accounts",
    metadata,
    Column("name", String(ACCOUNT), primary_key=True),
    Column("key", Integer, nullable=False, unique=True),  # high bits of its tags' ids
    Column("registry", String(REGISTRY), nullable=False),  # address without scheme
    Column("created_at", Millis, nullable=False),
    Column("catalog_ok_at", Millis),  # last successful repository listing
    Column("catalog_error", Text),  # set while the last listing failed
    Column("catalog_error_at", Millis),
)

repositories = Table(
    "repositories",
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),
    Column("name", sorted_text(REPOSITORY), primary_key=True),
    Column("status", String(16), nullable=False),  # new | ok | stale
    Column("tag_count", Integer, nullable=False),
    Column("last_ok_at", Millis),  # last successful tags/list (the "last good" time)
    Column("last_scan_at", Millis),  # last attempt, good or not
    Column("last_error", Text),  # set while stale
    Column("last_error_at", Millis),
    Column("changed_at", Millis),  # last write of its tags or their metadata (cache validator)
    Column("scan_id", String(36)),  # the scan in progress; a superseded scan cannot finish
    ForeignKeyConstraint(["account"], ["accounts.name"], ondelete="CASCADE"),
)

# SQLite: the tags that `images/find` by tag cannot look up through the trigram index (":t" is
# two characters); the lookup repeats this condition so that the partial index serves it
SHORT_TAG = 2  # tags shorter than this
SHORT_TAG_SQL = f"length(tag) < {SHORT_TAG}"

tags = Table(
    "tags",
    metadata,
    # (accounts.key << 40) + n: one id range per account, so that the SQLite search index can be
    # restricted to one account with a rowid range (see regwatch.store.dialect)
    Column("id", BigId, primary_key=True, autoincrement=False),
    Column("account", String(ACCOUNT), nullable=False),
    Column("repository", sorted_text(REPOSITORY), nullable=False),
    Column("tag", sorted_text(TAG), nullable=False),
    Column("registry", String(REGISTRY), nullable=False),
    Column("ref", String(REF), nullable=False),  # lower("registry/repository:tag"), for search
    Column("digest", String(DIGEST)),  # image manifest (or index) digest the tag points at
    Column("index_digest", String(DIGEST)),  # the manifest list / OCI index, when multi-platform
    Column("platform_digests", JSON),  # {"linux/amd64": "sha256:…"}
    Column("created_ms", Millis),  # image creation date from the config blob
    Column("labels", JSON),
    Column("first_seen", Millis, nullable=False),
    Column("last_seen", Millis, nullable=False),
    Column("last_changed", Millis, nullable=False),
    Column("semver_key", sorted_text(SORT_KEY), nullable=False),  # regwatch.store.sorting
    Column("date_key", Millis, nullable=False),  # created_ms, 0 when unknown: newest-first index
    UniqueConstraint("account", "repository", "tag"),
    ForeignKeyConstraint(
        ["account", "repository"],
        ["repositories.account", "repositories.name"],
        ondelete="CASCADE",
    ),
    Index(None, "account", "repository", "semver_key", "tag"),  # covering: no table reads
    Index(None, "account", "repository", "date_key", "tag"),
    # `images/find` by tag without a repository. PostgreSQL only: on SQLite that lookup goes
    # through the trigram index (a tag-name index scatters every scan's inserts over its pages:
    # 9-18 % of the writer's merge work, docs/benchmarks.md; migration 0005), except for the
    # one-character tags that hold no trigram with their ":": those few have their own index
    Index(None, "tag").ddl_if(dialect="postgresql"),
    Index("ix_tags_short_tag", "tag", sqlite_where=text(SHORT_TAG_SQL)).ddl_if(dialect="sqlite"),
)

manifest_cache = Table(
    "manifest_cache",  # content-addressed: a digest's manifest never changes
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("media_type", String(255), nullable=False),
    Column("size", BigInteger),
    Column("config_digest", String(DIGEST)),
    Column("platforms", JSON),  # [{"digest", "media_type", "os", "architecture", "variant"}]
    Column("annotations", JSON),
    Column("stored_at", Millis, nullable=False),
)

config_cache = Table(
    "config_cache",  # content-addressed: a config blob is fetched once per digest, ever
    metadata,
    Column("digest", String(DIGEST), primary_key=True),
    Column("created_ms", Millis),
    Column("labels", JSON),
    Column("os", String(64)),
    Column("architecture", String(64)),
    Column("stored_at", Millis, nullable=False),
)

scan_runs = Table(
    "scan_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account", String(ACCOUNT), nullable=False),
    Column("started_at", Millis, nullable=False),
    Column("finished_at", Millis),
    Column("status", String(16), nullable=False),  # running | ok | partial | failed
    Column("requests", Integer, nullable=False),
    Column("repositories_ok", Integer, nullable=False),
    Column("repositories_failed", Integer, nullable=False),
    Column("errors", JSON),  # [{"repository": str | null, "error": str}]
    Column("holder", String(255)),  # instance that ran it (multi-instance mode)
    ForeignKeyConstraint(["account"], ["accounts.name"], ondelete="CASCADE"),
    Index(None, "account", "started_at"),
)

scan_staging = Table(
    "scan_staging",  # tags seen by a repository scan in progress, merged by finish
    metadata,
    Column("scan_id", String(36), primary_key=True),
    Column("tag", sorted_text(TAG), primary_key=True),
    Column("position", Integer, nullable=False),  # order seen; orders the events
    Column("account", String(ACCOUNT), nullable=False),
    Column("repository", sorted_text(REPOSITORY), nullable=False),
    Column("ref", String(REF), nullable=False),
    Column("semver_key", sorted_text(SORT_KEY), nullable=False),
    Column("has_metadata", Boolean, nullable=False),  # False: only "still there"
    Column("digest", String(DIGEST)),
    Column("index_digest", String(DIGEST)),
    Column("platform_digests", JSON),
    Column("created_ms", Millis),
    Column("labels", JSON),
    Column("event_id", String(36)),
    Column("event_kind", String(32)),
    Index(None, "account", "repository"),
)

tag_history = Table(
    "tag_history",  # every digest a tag pointed at: added | changed | removed
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account", String(ACCOUNT), nullable=False),
    Column("repository", sorted_text(REPOSITORY), nullable=False),
    Column("tag", sorted_text(TAG), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("digest", String(DIGEST)),
    Column("previous_digest", String(DIGEST)),
    Column("at", Millis, nullable=False),
    ForeignKeyConstraint(["account"], ["accounts.name"], ondelete="CASCADE"),
    Index(None, "account", "repository", "tag", "id"),
)

events = Table(
    "events",  # written in the same transaction as the index change that caused it
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),  # global order
    Column("id", String(36), nullable=False, unique=True),  # idempotency key for sinks
    Column("kind", String(32), nullable=False),  # tag_added | digest_changed | …
    Column("account", String(ACCOUNT), nullable=False),
    Column("registry", String(REGISTRY), nullable=False),
    Column("repository", sorted_text(REPOSITORY), nullable=False),
    Column("tag", sorted_text(TAG), nullable=False),
    Column("digest", String(DIGEST)),
    Column("previous_digest", String(DIGEST)),
    Column("created_at", Millis, nullable=False),
    Index(None, "account", "repository", "seq"),
)

deliveries = Table(
    "deliveries",  # the outbox: one row per (event, sink)
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_seq", BigInteger, nullable=False),
    Column("sink", String(128), nullable=False),
    Column("account", String(ACCOUNT), nullable=False),  # copied from the event, for ordering
    Column("repository", sorted_text(REPOSITORY), nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Millis, nullable=False),
    Column("last_error", Text),
    Column("lease_holder", String(255)),
    Column("lease_expires_at", Millis),
    Column("delivered_at", Millis),
    ForeignKeyConstraint(["event_seq"], ["events.seq"], ondelete="CASCADE"),
    UniqueConstraint("event_seq", "sink"),
    Index(None, "status", "next_attempt_at"),
    Index(None, "sink", "account", "repository", "event_seq"),
)

leases = Table(
    "leases",  # named leases: "scan:{account}", "scan:{account}/{repository}", "outbox:…"
    metadata,
    Column("name", String(512), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", Millis, nullable=False),
    Column("acquired_at", Millis, nullable=False),
)

# --- several instances: shared passes of large catalogs, scan requests (revision 0002) ----------
scan_jobs = Table(
    "scan_jobs",  # one row per repository of a shared account; reused by every pass
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),
    Column("repository", sorted_text(REPOSITORY), primary_key=True),
    Column("run_id", BigInteger, nullable=False),  # the pass (scan_runs.id) it was published for
    Column("position", Integer, nullable=False),  # listing order: claimed in that order
    Column("status", String(16), nullable=False),  # pending | claimed | done
    Column("holder", String(255)),  # the instance that claimed it
    Column("lease_expires_at", Millis),  # claimable again after this (a crashed holder)
    Column("attempts", Integer, nullable=False),
    Column("ok", Boolean),
    Column("error", Text),
    Column("requests", Integer, nullable=False),
    Column("tags", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("tag_errors", Integer, nullable=False),
    Column("scanned_by", String(255)),  # the instance that last finished it (kept across passes)
    Column("scanned_at", Millis),
    Column("scanned_run", BigInteger),  # the pass it was last scanned in
    ForeignKeyConstraint(["account"], ["accounts.name"], ondelete="CASCADE"),
    Index(None, "run_id", "status"),
    Index(None, "status", "lease_expires_at"),
)

scan_requests = Table(
    "scan_requests",  # "scan now" asked on any instance, consumed by the scan that follows
    metadata,
    Column("account", String(ACCOUNT), primary_key=True),  # no FK: may precede the first scan
    Column("requested_at", Millis, nullable=False),
    Column("requested_by", String(255)),
)
