"""A repository scan's start and failure, and the known tags it plans with (the staged merge is
in scans.py, the direct one in merge.py).

`begin_repository_scan` claims the repository (`repositories.scan_id`): a scan that another one
superseded cannot finish, and a push recorded meanwhile is handed to the running scan (push.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import and_, bindparam, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from regwatch.errors import StoreError
from regwatch.store.accounts import clip, ensure_repository, require_account
from regwatch.store.prepared import Prepared
from regwatch.store.records import RepositoryScan, at_ms
from regwatch.store.schema import accounts, repositories, scan_staging, tags

_KNOWN = and_(tags.c.account == bindparam("account"), tags.c.repository == bindparam("repository"))
_KNOWN_ALL = Prepared(
    lambda _: select(tags.c.tag, tags.c.digest).where(_KNOWN), "account", "repository"
)
# prebuilt (compiled once by SQLAlchemy's cache); the IN list is expanded per call
_KNOWN_SOME = select(tags.c.tag, tags.c.digest).where(
    _KNOWN, tags.c.tag.in_(bindparam("names", expanding=True))
)


def known_tags(
    conn: Connection, account: str, repository: str, only: Iterable[str] | None = None
) -> dict[str, str | None]:
    """tag → stored digest (None when not tracked), for all tags or for the `only` ones."""
    if only is None:
        return dict(_KNOWN_ALL.rows(conn, (account, repository)))
    wanted = list(dict.fromkeys(only))
    found: dict[str, str | None] = {}
    for start in range(0, len(wanted), 500):
        params = {
            "account": account,
            "repository": repository,
            "names": wanted[start : start + 500],
        }
        found.update(conn.execute(_KNOWN_SOME, params).all())
    return found


# claim the repository; its last good time and the account's registry come back with it
_CLAIM = Prepared(
    lambda _: (
        update(repositories)
        .where(
            repositories.c.account == bindparam("account"),
            repositories.c.name == bindparam("repository"),
        )
        .values(scan_id=bindparam("scan_id"))
        .returning(
            repositories.c.last_ok_at,
            select(accounts.c.registry)
            .where(accounts.c.name == repositories.c.account)
            .scalar_subquery(),
        )
    ),
    "scan_id",
    "account",
    "repository",
)


def begin_repository_scan(
    conn: Connection, account: str, repository: str, now: int
) -> RepositoryScan:
    """Claim the repository for a new scan: one UPDATE … RETURNING (it runs once per repository
    on the single writer). Staging rows left by an abandoned scan are dropped by the next
    finish or failure of the repository, and ignored until then (they carry another scan id)."""
    scan_id = str(uuid.uuid4())
    row = _CLAIM.first(conn, (scan_id, account, repository))
    if row is None:  # not in the store yet (or the account is not)
        require_account(conn, account)
        ensure_repository(conn, account, repository)
        row = _CLAIM.first(conn, (scan_id, account, repository))
    if row is None:
        raise StoreError(f"cannot claim {account}/{repository} for a scan")
    last_ok, registry = row
    return RepositoryScan(
        scan_id=scan_id,
        account=account,
        repository=repository,
        registry=registry,
        baseline=last_ok is None,
        started_at=at_ms(now),
    )


def begin_repository_scans(
    conn: Connection, account: str, names: Sequence[str], now: int
) -> list[RepositoryScan]:
    """Claim several repositories for scanning at once (in `names` order), each with its own
    scan id: the indexer claims ahead in batches (indexer/claim_ahead.py) rather than making a
    writer call per repository."""
    return [begin_repository_scan(conn, account, name, now) for name in names]


def abort_repository_scan(conn: Connection, scan: RepositoryScan, error: str, now: int) -> None:
    """The scan failed. While it still owns the repository: `mark_repository_failed`. Once
    another scan has claimed the repository (or finished it), that scan's outcome stands: only
    this scan's own staging rows go, so a superseded scan neither marks the repository stale
    nor drops what its successor staged."""
    owner = conn.execute(select(repositories.c.scan_id).where(repository_of(scan))).first()
    if owner is not None and owner.scan_id != scan.scan_id:
        conn.execute(delete(scan_staging).where(scan_staging.c.scan_id == scan.scan_id))
        return
    mark_repository_failed(conn, scan.account, scan.repository, error, now)


def repository_of(scan: RepositoryScan) -> ColumnElement[bool]:
    """The `repositories` row of the scan's repository."""
    return and_(repositories.c.account == scan.account, repositories.c.name == scan.repository)


def mark_repository_failed(
    conn: Connection, account: str, repository: str, error: str, now: int
) -> None:
    """tags/list failed: keep the tags, mark the repository stale with the error; drop staging."""
    require_account(conn, account)
    ensure_repository(conn, account, repository)
    conn.execute(
        delete(scan_staging).where(
            scan_staging.c.account == account, scan_staging.c.repository == repository
        )
    )
    conn.execute(
        update(repositories)
        .where(repositories.c.account == account, repositories.c.name == repository)
        .values(
            status="stale",
            last_error=clip(error),
            last_error_at=now,
            last_scan_at=now,
            scan_id=None,
        )
    )
