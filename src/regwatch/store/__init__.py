"""regwatch's store: the index of tagged images, scan runs, events and outbox, on SQLite (default)
or PostgreSQL, through SQLAlchemy Core with Alembic migrations shipped in the package.

    store = open_store(resolve_store_url(config_value))   # checks / creates the schema
    astore = AsyncStore(store)                              # for asyncio code
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from regwatch.store.aio import AsyncStore
from regwatch.store.engine import make_engines
from regwatch.store.migrate import (
    check_schema,
    current_revision,
    database_errors,
    head_revision,
    upgrade,
)
from regwatch.store.records import (
    DIGEST_CHANGED,
    TAG_ADDED,
    AccountStatus,
    Counts,
    Delivery,
    HistoryEntry,
    RepositoryScan,
    RepositoryState,
    ScanOutcome,
    ScanRun,
    StagedTag,
    StoredEvent,
    TagOrder,
    utc_now,
)
from regwatch.store.sorting import semver_key
from regwatch.store.store import Store
from regwatch.store.url import DEFAULT_STORE_URL, normalize_store_url, resolve_store_url


def open_store(
    url: str | None = None,
    *,
    auto_upgrade: bool | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Store:
    """Open the store at `url` (default: `resolve_store_url(None)`), checking its schema.

    A new SQLite file gets the schema; anything else must already be at this version's head
    revision (see `regwatch.store.migrate` for the policy), else SchemaMismatch.
    """
    resolved = normalize_store_url(url) if url else resolve_store_url(None)
    engines = make_engines(resolved)
    try:
        with database_errors(resolved, "open"):
            check_schema(engines, resolved, auto_upgrade=auto_upgrade)
    except BaseException:
        engines.dispose()
        raise
    return Store(engines, resolved, clock=clock)


__all__ = [
    "DEFAULT_STORE_URL",
    "DIGEST_CHANGED",
    "TAG_ADDED",
    "AccountStatus",
    "AsyncStore",
    "Counts",
    "Delivery",
    "HistoryEntry",
    "RepositoryScan",
    "RepositoryState",
    "ScanOutcome",
    "ScanRun",
    "StagedTag",
    "Store",
    "StoredEvent",
    "TagOrder",
    "current_revision",
    "head_revision",
    "open_store",
    "resolve_store_url",
    "semver_key",
    "upgrade",
]
