"""Accounts, their repositories and their scan runs (functions on an open write connection)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection, Row

from regwatch.errors import StoreError
from regwatch.store.dialect import ACCOUNT_KEYS_LOCK, insert_ignoring_conflicts, transaction_lock
from regwatch.store.records import RepositoryState, RunStatus, ScanRun, at_ms, from_ms
from regwatch.store.schema import (
    accounts,
    deliveries,
    events,
    repositories,
    scan_runs,
    scan_staging,
    tag_history,
    tags,
)

MAX_ERROR_CHARS = 2000
_CHUNK = 500


def clip(error: str) -> str:
    """Errors are stored for display; a registry's error body must not bloat the store."""
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


def chunks(items: Sequence[str], size: int = _CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def account_key(conn: Connection, account: str, *, lock: bool = False) -> int | None:
    """The account's key (high bits of its tag ids), None when it is not in the store.

    `lock=True` takes the row lock on PostgreSQL (serialises id allocation per account; SQLite
    has one writer anyway and ignores FOR UPDATE).
    """
    query = select(accounts.c.key).where(accounts.c.name == account)
    if lock:
        query = query.with_for_update()
    key = conn.execute(query).scalar_one_or_none()
    return None if key is None else int(key)


def require_account(conn: Connection, account: str, *, lock: bool = False) -> int:
    key = account_key(conn, account, lock=lock)
    if key is None:
        raise StoreError(
            f"account {account!r} is not in the store", hint="call ensure_account() first"
        )
    return key


def ensure_account(conn: Connection, account: str, registry: str, now: int) -> int:
    """Create the account, or update its registry (and its tags' refs) when it changed.

    Several instances register their accounts at once: creating one (max key + 1) is serialised
    and the account looked up again once that lock is held."""
    query = select(accounts.c.key, accounts.c.registry).where(accounts.c.name == account)
    row = conn.execute(query).one_or_none()
    if row is None:
        transaction_lock(conn, ACCOUNT_KEYS_LOCK)
        row = conn.execute(query).one_or_none()
    if row is None:
        key = int(conn.execute(select(func.coalesce(func.max(accounts.c.key), 0))).scalar_one())
        conn.execute(
            insert(accounts).values(name=account, key=key + 1, registry=registry, created_at=now)
        )
        return key + 1
    if row.registry != registry:
        conn.execute(update(accounts).where(accounts.c.name == account).values(registry=registry))
        ref = func.lower(literal(registry) + "/" + tags.c.repository + ":" + tags.c.tag)
        conn.execute(
            update(tags).where(tags.c.account == account).values(registry=registry, ref=ref)
        )
    return int(row.key)


def replace_repositories(
    conn: Connection, account: str, names: Iterable[str], now: int
) -> tuple[int, int]:
    """Make the account's repositories exactly `names` (a successful catalog); (added, removed).

    Removed repositories lose their tags (recorded as removed in the tag history).
    """
    require_account(conn, account)
    wanted = set(names)
    existing = set(
        conn.execute(select(repositories.c.name).where(repositories.c.account == account)).scalars()
    )
    added = sorted(wanted - existing)
    removed = sorted(existing - wanted)
    if added:
        conn.execute(insert(repositories), [_new_repository(account, name) for name in added])
    for part in chunks(removed):
        _record_removed(conn, account, tags.c.repository.in_(part), now)
        conn.execute(
            delete(repositories).where(
                repositories.c.account == account, repositories.c.name.in_(part)
            )
        )
        conn.execute(
            delete(scan_staging).where(
                scan_staging.c.account == account, scan_staging.c.repository.in_(part)
            )
        )
    conn.execute(
        update(accounts)
        .where(accounts.c.name == account)
        .values(catalog_ok_at=now, catalog_error=None, catalog_error_at=None)
    )
    return len(added), len(removed)


def _new_repository(account: str, name: str) -> dict[str, Any]:
    return {"account": account, "name": name, "status": "new", "tag_count": 0}


def ensure_repository(conn: Connection, account: str, name: str) -> None:
    """Add the repository unless it is there (another instance may be adding it right now)."""
    exists = conn.execute(
        select(repositories.c.name).where(
            repositories.c.account == account, repositories.c.name == name
        )
    ).first()
    if exists is None:
        rows = [_new_repository(account, name)]
        insert_ignoring_conflicts(conn, repositories, rows, keys=["account", "name"])


def _record_removed(conn: Connection, account: str, where: Any, now: int) -> None:
    """Write a `removed` history entry for each tag matching `where` (before deleting them)."""
    rows = select(
        tags.c.account,
        tags.c.repository,
        tags.c.tag,
        literal("removed"),
        literal(None).label("digest"),
        tags.c.digest,
        literal(now),
    ).where(tags.c.account == account, where)
    columns = ["account", "repository", "tag", "kind", "digest", "previous_digest", "at"]
    conn.execute(insert(tag_history).from_select(columns, rows))


def mark_catalog_failed(conn: Connection, account: str, error: str, now: int) -> None:
    """The repository listing failed: keep the repositories, remember the error."""
    require_account(conn, account)
    conn.execute(
        update(accounts)
        .where(accounts.c.name == account)
        .values(catalog_error=clip(error), catalog_error_at=now)
    )


def repository_state(row: Row[Any]) -> RepositoryState:
    return RepositoryState(
        account=row.account,
        name=row.name,
        status=row.status,
        tag_count=int(row.tag_count),
        last_ok_at=from_ms(row.last_ok_at),
        last_scan_at=from_ms(row.last_scan_at),
        last_error=row.last_error,
        last_error_at=from_ms(row.last_error_at),
        changed_at=from_ms(row.changed_at),
    )


def list_repositories(conn: Connection, account: str) -> list[RepositoryState]:
    rows = conn.execute(
        select(repositories).where(repositories.c.account == account).order_by(repositories.c.name)
    )
    return [repository_state(row) for row in rows]


def delete_account(conn: Connection, account: str) -> bool:
    """Forget an account: its repositories, tags, history, runs, events and pending deliveries."""
    conn.execute(delete(scan_staging).where(scan_staging.c.account == account))
    conn.execute(delete(deliveries).where(deliveries.c.account == account))
    conn.execute(delete(events).where(events.c.account == account))
    # tags, repositories, history and runs go by ON DELETE CASCADE
    return bool(conn.execute(delete(accounts).where(accounts.c.name == account)).rowcount)


def start_run(conn: Connection, account: str, now: int, holder: str | None) -> int:
    require_account(conn, account)
    result = conn.execute(
        insert(scan_runs)
        .values(
            account=account,
            started_at=now,
            status="running",
            requests=0,
            repositories_ok=0,
            repositories_failed=0,
            errors=[],
            holder=holder,
        )
        .returning(scan_runs.c.id)
    )
    return int(result.scalar_one())


def run_status(ok: int, failed: int, errors: Sequence[Mapping[str, Any]]) -> RunStatus:
    if not failed and not errors:
        return "ok"
    return "failed" if ok == 0 else "partial"


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    now: int,
    requests: int,
    repositories_ok: int,
    repositories_failed: int,
    errors: Sequence[Mapping[str, Any]],
    status: RunStatus | None,
) -> None:
    final = status or run_status(repositories_ok, repositories_failed, errors)
    result = conn.execute(
        update(scan_runs)
        .where(scan_runs.c.id == run_id)
        .values(
            finished_at=now,
            status=final,
            requests=requests,
            repositories_ok=repositories_ok,
            repositories_failed=repositories_failed,
            errors=[
                {k: (clip(v) if isinstance(v, str) else v) for k, v in e.items()} for e in errors
            ],
        )
    )
    if not result.rowcount:
        raise StoreError(f"scan run {run_id} is not in the store")


def scan_run(row: Row[Any]) -> ScanRun:
    return ScanRun(
        id=int(row.id),
        account=row.account,
        started_at=at_ms(row.started_at),
        finished_at=from_ms(row.finished_at),
        status=row.status,
        requests=int(row.requests),
        repositories_ok=int(row.repositories_ok),
        repositories_failed=int(row.repositories_failed),
        errors=tuple(row.errors or ()),
        holder=row.holder,
    )
