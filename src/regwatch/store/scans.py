"""Repository scans: stage the tags seen page by page, then merge them in one transaction.

Why staging: a repository may have 100,000 tags, listed page by page with registry round trips
in between. Holding them in memory breaks the flat-memory goal; writing them straight into `tags`
breaks atomicity (a failure half-way would leave half a rescan, and readers would see it); and
holding one write transaction open across network calls would block every other writer (SQLite
has one). So each page goes into `scan_staging` in its own short transaction, and
`finish_repository_scan` merges the whole repository in one short transaction with a handful of
set-based statements: record history and events, update the tags still there, delete those not
seen, insert the new ones. A failed scan just drops its staging rows; the index is untouched.

The last page is handed to `finish_repository_scan` rather than staged; when nothing was staged
before it (a repository listed in one page, the common case), the direct merge of merge.py
applies it without the staging table. The scan's start and failure are in claims.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from regwatch.errors import StoreError
from regwatch.store.accounts import _record_removed, require_account
from regwatch.store.claims import repository_of
from regwatch.store.dialect import lock_event_order, prefer_set_joins, upsert
from regwatch.store.merge import merge_listing
from regwatch.store.records import (
    DIGEST_CHANGED,
    TAG_ADDED,
    RepositoryScan,
    ScanOutcome,
    StagedTag,
    to_ms,
)
from regwatch.store.schema import (
    deliveries,
    events,
    repositories,
    scan_staging,
    tag_history,
    tags,
)
from regwatch.store.search_upkeep import last_tag_id
from regwatch.store.sorting import semver_key

s = scan_staging


def stage_tags(conn: Connection, scan: RepositoryScan, page: Sequence[StagedTag]) -> None:
    """Add one page of seen tags to the scan (a tag staged twice keeps the later data)."""
    rows = [_staging_row(scan, scan.staged + i, item) for i, item in enumerate(page)]
    columns = [c.name for c in s.columns if c.name not in ("scan_id", "tag", "position")]
    upsert(conn, s, rows, keys=["scan_id", "tag"], update=columns)
    scan.staged += len(rows)


def _staging_row(scan: RepositoryScan, position: int, item: StagedTag) -> dict[str, Any]:
    event_id = item.event_id or (str(uuid.uuid4()) if item.event else None)
    return {
        "scan_id": scan.scan_id,
        "tag": item.tag,
        "position": position,
        "account": scan.account,
        "repository": scan.repository,
        "ref": f"{scan.registry}/{scan.repository}:{item.tag}".lower(),
        "semver_key": semver_key(item.tag),
        "has_metadata": item.metadata,
        "digest": item.digest,
        "index_digest": item.index_digest,
        "platform_digests": dict(item.platform_digests) or None,
        "created_ms": to_ms(item.created) if item.created else None,
        "labels": dict(item.labels) or None,
        "event_id": event_id if item.event else None,
        "event_kind": item.event,
    }


def _same_tag(scan: RepositoryScan) -> ColumnElement[bool]:
    """The indexed tag of a staged one. Account and repository are given as constants (rather
    than `== s.c.account`): the planner then reads only this repository's range of `tags`."""
    return and_(
        tags.c.account == scan.account,
        tags.c.repository == scan.repository,
        tags.c.tag == s.c.tag,
    )


def finish_repository_scan(
    conn: Connection,
    scan: RepositoryScan,
    now: int,
    sinks: Sequence[str],
    last_page: Sequence[StagedTag] = (),
) -> ScanOutcome:
    """Merge the scan into the index (call inside one write transaction): the staged tags plus
    `last_page`, the listing's final page. Nothing staged (a repository listed in one page):
    the page is merged directly (merge.py); otherwise it is staged and merged with the rest."""
    if not scan.staged:
        return merge_listing(conn, scan, last_page, now, sinks)
    if last_page:
        stage_tags(conn, scan, last_page)
    return _merge_staged(conn, scan, now, sinks)


def _merge_staged(
    conn: Connection, scan: RepositoryScan, now: int, sinks: Sequence[str]
) -> ScanOutcome:
    key = require_account(conn, scan.account, lock=True)
    _check_current(conn, scan)
    prefer_set_joins(conn)
    mine = s.c.scan_id == scan.scan_id
    added = _record_history(conn, scan, mine, now, new=True)
    changed = _record_history(conn, scan, mine, now, new=False)
    event_count = _record_events(conn, scan, mine, now, sinks)
    rewritten = _update_existing(conn, scan, mine, now)
    in_repo = and_(tags.c.account == scan.account, tags.c.repository == scan.repository)
    gone = not_(exists().where(mine, s.c.tag == tags.c.tag))
    _record_removed(conn, scan.account, and_(in_repo, gone), now)
    removed = conn.execute(delete(tags).where(in_repo, gone)).rowcount
    _insert_new(conn, scan, key, mine, now)
    count = conn.execute(select(func.count()).select_from(tags).where(in_repo)).scalar_one()
    values: dict[str, Any] = {
        "status": "ok",
        "tag_count": count,
        "last_ok_at": now,
        "last_scan_at": now,
        "last_error": None,
        "last_error_at": None,
        "scan_id": None,
    }
    if added or rewritten or removed:  # changed_at: a cache validator (api/cache.py)
        values["changed_at"] = now
    conn.execute(update(repositories).where(repository_of(scan)).values(values))
    # this scan's rows, and any an abandoned scan of the repository left behind
    conn.execute(delete(s).where(s.c.account == scan.account, s.c.repository == scan.repository))
    return ScanOutcome(added, changed, int(removed), int(count), event_count)


def _check_current(conn: Connection, scan: RepositoryScan) -> None:
    current = conn.execute(select(repositories.c.scan_id).where(repository_of(scan))).scalar()
    if current != scan.scan_id:
        raise StoreError(
            f"the scan of {scan.account}/{scan.repository} was superseded by another scan",
            hint="only one scan per repository may run at a time",
        )


def _record_history(
    conn: Connection, scan: RepositoryScan, mine: ColumnElement[bool], now: int, *, new: bool
) -> int:
    """History rows for new tags (`new`) or for tags whose digest changed; returns the count."""
    if new:
        source = select(
            s.c.account,
            s.c.repository,
            s.c.tag,
            literal("added"),
            s.c.digest,
            literal(None),
            literal(now),
        ).where(mine, not_(exists().where(_same_tag(scan))))
    else:
        source = (
            select(
                s.c.account,
                s.c.repository,
                s.c.tag,
                literal("changed"),
                s.c.digest,
                tags.c.digest,
                literal(now),
            )
            .join(tags, _same_tag(scan))
            .where(
                mine,
                s.c.has_metadata,
                s.c.digest.is_not(None),
                tags.c.digest.is_distinct_from(s.c.digest),
            )
        )
    columns = ["account", "repository", "tag", "kind", "digest", "previous_digest", "at"]
    count = _count(conn, source)
    if count:
        conn.execute(insert(tag_history).from_select(columns, source))
    return count


def _count(conn: Connection, source: Select[Any]) -> int:
    """Rows a SELECT returns; counted up front because an INSERT … SELECT's rowcount is not
    reported by every driver (psycopg 3 through SQLAlchemy gives -1)."""
    return int(conn.execute(select(func.count()).select_from(source.subquery())).scalar_one())


def _record_events(
    conn: Connection,
    scan: RepositoryScan,
    mine: ColumnElement[bool],
    now: int,
    sinks: Sequence[str],
) -> int:
    """Events asked for by the staged tags, in the order seen, and one delivery per sink each."""
    source = (
        select(
            s.c.event_id,
            s.c.event_kind,
            s.c.account,
            literal(scan.registry),
            s.c.repository,
            s.c.tag,
            s.c.digest,
            tags.c.digest,
            literal(now),
        )
        .select_from(s.outerjoin(tags, _same_tag(scan)))
        .where(mine, s.c.event_id.is_not(None), _still_news())
        .order_by(s.c.position)
    )
    columns = [
        "id",
        "kind",
        "account",
        "registry",
        "repository",
        "tag",
        "digest",
        "previous_digest",
    ]
    count = _count(conn, source)
    if count:
        lock_event_order(conn)
        conn.execute(insert(events).from_select([*columns, "created_at"], source))
    for sink in sinks if count else ():
        rows = (
            select(
                events.c.seq,
                literal(sink),
                events.c.account,
                events.c.repository,
                literal("pending"),
                literal(0),
                literal(now),
            )
            .join(s, s.c.event_id == events.c.id)
            .where(mine)
        )
        names = [
            "event_seq",
            "sink",
            "account",
            "repository",
            "status",
            "attempts",
            "next_attempt_at",
        ]
        conn.execute(insert(deliveries).from_select(names, rows))
    return count


def _still_news() -> ColumnElement[bool]:
    """A staged event still says something new at merge time (as merge.py's `_still_news`): no
    `tag_added` for a tag already indexed, no `digest_changed` to the digest already indexed
    (a push recorded it meanwhile without a hand-off, or its hand-off was staged over)."""
    return or_(
        s.c.event_kind.not_in([TAG_ADDED, DIGEST_CHANGED]),
        and_(s.c.event_kind == TAG_ADDED, tags.c.id.is_(None)),
        and_(s.c.event_kind == DIGEST_CHANGED, tags.c.digest.is_distinct_from(s.c.digest)),
    )


def _update_existing(
    conn: Connection, scan: RepositoryScan, mine: ColumnElement[bool], now: int
) -> int:
    """Tags seen again: only `last_seen`, or also the metadata when the scan fetched it (two
    disjoint updates: each row is written once, which on PostgreSQL means one new row version
    and one round of index entries, not two). Returns how many rows got metadata."""
    in_repo = and_(tags.c.account == scan.account, tags.c.repository == scan.repository)
    conn.execute(
        update(tags)
        .where(in_repo, exists().where(mine, s.c.tag == tags.c.tag, not_(s.c.has_metadata)))
        .values(last_seen=now)
    )
    moved = and_(s.c.digest.is_not(None), tags.c.digest.is_distinct_from(s.c.digest))
    result = conn.execute(
        update(tags)
        .where(in_repo, mine, s.c.has_metadata, _same_tag(scan))
        .values(
            last_seen=now,
            digest=s.c.digest,
            index_digest=s.c.index_digest,
            platform_digests=s.c.platform_digests,
            created_ms=s.c.created_ms,
            labels=s.c.labels,
            date_key=func.coalesce(s.c.created_ms, 0),
            last_changed=case((moved, now), else_=tags.c.last_changed),
        )
    )
    return int(result.rowcount)


def _insert_new(
    conn: Connection, scan: RepositoryScan, key: int, mine: ColumnElement[bool], now: int
) -> None:
    last_id = last_tag_id(conn, key)
    new_id = literal(last_id) + func.row_number().over(order_by=s.c.position)
    source = select(
        new_id,
        s.c.account,
        s.c.repository,
        s.c.tag,
        literal(scan.registry),
        s.c.ref,
        s.c.digest,
        s.c.index_digest,
        s.c.platform_digests,
        s.c.created_ms,
        s.c.labels,
        literal(now),
        literal(now),
        literal(now),
        s.c.semver_key,
        func.coalesce(s.c.created_ms, 0),
    ).where(mine, not_(exists().where(_same_tag(scan))))
    columns = [
        "id", "account", "repository", "tag", "registry", "ref", "digest", "index_digest",
        "platform_digests", "created_ms", "labels", "first_seen", "last_seen", "last_changed",
        "semver_key", "date_key",
    ]  # fmt: skip
    conn.execute(insert(tags).from_select(columns, source))
