"""Merge a repository whose whole listing is in hand, in one transaction, without staging.

Most repositories are listed in one `tags/list` page; staging such a listing (scans.py) only to
merge it back with a dozen set-based statements cost ~6 ms of the single writer per repository
(and its Python time holds the GIL against the event loop). Here the listing is compared in
Python with the repository's rows, read inside the write transaction, and only what changed is
written, with a few prepared statements (prepared.py) run as executemany:
- new tags are inserted (ids allocated as in scans.py), with an `added` history entry;
- tags listed with metadata get it (a `changed` entry when the digest moved);
- tags not listed are deleted (a `removed` entry) — the caller hands over a complete, successful
  listing, exactly as for `finish_repository_scan`;
- every tag still there gets `last_seen` in one UPDATE of the repository's range;
- events asked for are recorded with their deliveries, in listing order.

The rules are those of the staged merge (same results, see tests/integration/test_store_scans.py),
including the hand-off with push notifications (push.py): a tag recorded by a push while the scan
was running sits in the staging table under the scan's id; it is kept even though the listing
missed it, and the scan records no event for it (the push did). Whatever the hand-off, an event
must still say something new at merge time: no `tag_added` for a tag already indexed, no
`digest_changed` to the digest already indexed (both merges, `_still_news`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, literal_column, null, select, update
from sqlalchemy.engine import Connection

from regwatch.errors import StoreError
from regwatch.store.dialect import lock_event_order
from regwatch.store.prepared import Prepared, json_text
from regwatch.store.records import (
    DIGEST_CHANGED,
    TAG_ADDED,
    RepositoryScan,
    ScanOutcome,
    StagedTag,
    to_ms,
)
from regwatch.store.schema import (
    accounts,
    deliveries,
    events,
    repositories,
    scan_staging,
    tag_history,
    tags,
)
from regwatch.store.search_upkeep import last_tag_id
from regwatch.store.sorting import semver_key

_IN_REPOSITORY = and_(
    tags.c.account == bindparam("account"), tags.c.repository == bindparam("repository")
)
_CURRENT = Prepared(
    lambda _: (
        select(accounts.c.key, repositories.c.scan_id)
        .select_from(
            accounts.outerjoin(
                repositories,
                and_(
                    repositories.c.account == accounts.c.name,
                    repositories.c.name == bindparam("repository"),
                ),
            )
        )
        .where(accounts.c.name == bindparam("account"))
        .with_for_update(of=accounts)
    ),  # PostgreSQL: serialises tag ids per account (SQLite: none)
    "account",
    "repository",
)
_IN_STAGING = and_(
    scan_staging.c.account == bindparam("account"),
    scan_staging.c.repository == bindparam("repository"),
)
_STAGED = Prepared(
    lambda _: select(scan_staging.c.scan_id, scan_staging.c.tag).where(_IN_STAGING),
    "account",
    "repository",
)
_EXISTING = Prepared(
    lambda _: select(tags.c.id, tags.c.tag, tags.c.digest).where(_IN_REPOSITORY),
    "account",
    "repository",
)
_TAG_COLUMNS = (
    "id", "account", "repository", "tag", "registry", "ref", "digest", "index_digest",
    "platform_digests", "created_ms", "labels", "first_seen", "last_seen", "last_changed",
    "semver_key", "date_key",
)  # fmt: skip
_INSERT_TAG = Prepared(
    lambda _: insert(tags).values({name: bindparam(name) for name in _TAG_COLUMNS}),
    *_TAG_COLUMNS,
)
_METADATA = ("digest", "index_digest", "platform_digests", "created_ms", "labels", "date_key")
_UPDATE_TAG = Prepared(
    lambda _: (
        update(tags)
        .where(tags.c.id == bindparam("tag_id"))
        .values(
            {
                **{name: bindparam(f"new_{name}") for name in _METADATA},
                "last_seen": bindparam("now"),
                "last_changed": func.coalesce(bindparam("moved_at"), tags.c.last_changed),
            }
        )
    ),
    *(f"new_{name}" for name in _METADATA),
    "now",
    "moved_at",
    "tag_id",
)
_DELETE_TAG = Prepared(lambda _: tags.delete().where(tags.c.id == bindparam("tag_id")), "tag_id")
_TOUCH = Prepared(
    lambda _: (
        update(tags)
        .where(_IN_REPOSITORY, tags.c.last_seen != bindparam("now"))
        .values(last_seen=bindparam("now"))
    ),
    "now",
    "account",
    "repository",
)
_HISTORY_COLUMNS = ("account", "repository", "tag", "kind", "digest", "previous_digest", "at")
_INSERT_HISTORY = Prepared(
    lambda _: insert(tag_history).values({n: bindparam(n) for n in _HISTORY_COLUMNS}),
    *_HISTORY_COLUMNS,
)
_EVENT_COLUMNS = (
    "id", "kind", "account", "registry", "repository", "tag", "digest", "previous_digest",
    "created_at",
)  # fmt: skip
_INSERT_EVENT = Prepared(
    lambda _: insert(events).values({n: bindparam(n) for n in _EVENT_COLUMNS}), *_EVENT_COLUMNS
)
_LAST_SEQ = Prepared(lambda _: select(func.coalesce(func.max(events.c.seq), literal_column("0"))))
_NEW_SEQS = Prepared(
    lambda _: (
        select(events.c.seq)
        .where(
            events.c.account == bindparam("account"),
            events.c.repository == bindparam("repository"),
            events.c.seq > bindparam("after"),
        )
        .order_by(events.c.seq)
    ),
    "account",
    "repository",
    "after",
)
_DELIVERY_COLUMNS = (
    "event_seq", "sink", "account", "repository", "status", "attempts", "next_attempt_at",
)  # fmt: skip
_INSERT_DELIVERY = Prepared(
    lambda _: insert(deliveries).values({n: bindparam(n) for n in _DELIVERY_COLUMNS}),
    *_DELIVERY_COLUMNS,
)
_FINISH_REPOSITORY = Prepared(
    lambda _: (
        update(repositories)
        .where(
            repositories.c.account == bindparam("account"),
            repositories.c.name == bindparam("repository"),
        )
        .values(
            status=literal_column("'ok'"),
            tag_count=bindparam("count"),
            last_ok_at=bindparam("now"),
            last_scan_at=bindparam("now"),
            last_error=null(),
            last_error_at=null(),
            scan_id=null(),
            changed_at=func.coalesce(bindparam("changed_at"), repositories.c.changed_at),
        )
    ),
    "count",
    "now",
    "changed_at",
    "account",
    "repository",
)
_DROP_STAGED = Prepared(lambda _: scan_staging.delete().where(_IN_STAGING), "account", "repository")


@dataclass
class _Diff:
    """What the listing changes, worked out from the repository's rows."""

    inserts: list[StagedTag] = field(default_factory=list)
    updates: list[tuple[StagedTag, int, bool]] = field(default_factory=list)  # item, id, moved
    removed: list[tuple[int, str, str | None]] = field(default_factory=list)  # id, tag, digest
    history: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    events: list[tuple[StagedTag, str | None]] = field(default_factory=list)  # item, previous
    changed: int = 0


def merge_listing(
    conn: Connection,
    scan: RepositoryScan,
    listed: Sequence[StagedTag],
    now: int,
    sinks: Sequence[str],
) -> ScanOutcome:
    """Apply a complete listing of the scan's repository (call inside one write transaction)."""
    key = _check_current(conn, scan)
    where = (scan.account, scan.repository)
    staged = _STAGED.rows(conn, where)  # pushes' hand-offs, and leftovers of abandoned scans
    pushed = {tag for scan_id, tag in staged if scan_id == scan.scan_id}
    existing = {tag: (tag_id, digest) for tag_id, tag, digest in _EXISTING.rows(conn, where)}
    diff = _diff(listed, existing, pushed)
    _write_tags(conn, scan, key, diff, len(existing) - len(diff.removed), now)
    event_count = _write_events(conn, scan, diff.events, now, sinks)
    count = len(existing) - len(diff.removed) + len(diff.inserts)
    touched = diff.inserts or diff.updates or diff.removed  # changed_at: a cache validator
    _FINISH_REPOSITORY.run(conn, (count, now, now if touched else None, *where))
    if staged:
        _DROP_STAGED.run(conn, where)
    return ScanOutcome(len(diff.inserts), diff.changed, len(diff.removed), count, event_count)


def _check_current(conn: Connection, scan: RepositoryScan) -> int:
    """The account's key, once sure that this scan still owns the repository."""
    row = _CURRENT.first(conn, (scan.account, scan.repository))
    if row is None:
        raise StoreError(
            f"account {scan.account!r} is not in the store", hint="call ensure_account() first"
        )
    key, current = row
    if current != scan.scan_id:
        raise StoreError(
            f"the scan of {scan.account}/{scan.repository} was superseded by another scan",
            hint="only one scan per repository may run at a time",
        )
    return int(key)


def _diff(
    listed: Sequence[StagedTag],
    existing: dict[str, tuple[int, str | None]],
    pushed: set[str],
) -> _Diff:
    latest = {item.tag: item for item in listed}  # a tag listed twice: later data, first place
    diff = _Diff()
    changed: list[tuple[str, str, str | None, str | None]] = []
    for tag, item in latest.items():
        row = existing.get(tag)
        old = None if row is None else row[1]
        if row is None:
            diff.inserts.append(item)
            diff.history.append((tag, "added", item.digest, None))
        elif item.metadata:
            moved = item.digest is not None and item.digest != old
            diff.updates.append((item, row[0], moved))
            if moved:
                changed.append((tag, "changed", item.digest, old))
        if item.event and tag not in pushed and _still_news(item, row is not None, old):
            diff.events.append((item, old))
    diff.changed = len(changed)
    diff.history += changed  # the staged merge's order: added, changed, removed
    for tag, (tag_id, digest) in existing.items():
        if tag not in latest and tag not in pushed:
            diff.removed.append((tag_id, tag, digest))
            diff.history.append((tag, "removed", None, digest))
    return diff


def _still_news(item: StagedTag, indexed: bool, old: str | None) -> bool:
    """Whether the event the scan asks for still says something new at merge time: the tag may
    have been indexed (or moved) meanwhile by a push whose hand-off the scan did not get (on
    PostgreSQL, a push that read the repository before the scan claimed it)."""
    if item.event == TAG_ADDED:
        return not indexed
    if item.event == DIGEST_CHANGED:
        return item.digest != old
    return True


def _write_tags(
    conn: Connection, scan: RepositoryScan, key: int, diff: _Diff, kept: int, now: int
) -> None:
    """History, deletions, metadata updates, `last_seen` of the `kept` rows, insertions."""
    account, repository = scan.account, scan.repository
    if diff.history:
        rows = [(account, repository, *entry, now) for entry in diff.history]
        _INSERT_HISTORY.insert_rows(conn, rows)
    _DELETE_TAG.run_many(conn, [(tag_id,) for tag_id, _, _ in diff.removed])
    _UPDATE_TAG.run_many(
        conn,
        [(*_metadata(item), now, now if moved else None, tag_id)
         for item, tag_id, moved in diff.updates],
    )  # fmt: skip
    if kept:
        _TOUCH.run(conn, (now, account, repository))
    if diff.inserts:
        last_id = last_tag_id(conn, key)
        prefix = f"{scan.registry}/{repository}:"
        _INSERT_TAG.insert_rows(
            conn,
            [_new_row(last_id + n, scan, prefix, item, now)
             for n, item in enumerate(diff.inserts, start=1)],
        )  # fmt: skip


def _new_row(
    tag_id: int, scan: RepositoryScan, prefix: str, item: StagedTag, now: int
) -> tuple[Any, ...]:
    """A `tags` row, in the order of `_TAG_COLUMNS`."""
    digest, index_digest, platforms, created, labels, date_key = _metadata(item)
    return (tag_id, scan.account, scan.repository, item.tag, scan.registry,
            (prefix + item.tag).lower(), digest, index_digest, platforms, created, labels,
            now, now, now, semver_key(item.tag), date_key)  # fmt: skip


def _metadata(item: StagedTag) -> tuple[Any, ...]:
    """digest, index digest, platforms, created, labels, date key: as `_METADATA`."""
    created = to_ms(item.created) if item.created else None
    platforms = json_text(item.platform_digests)
    return (item.digest, item.index_digest, platforms, created, json_text(item.labels),
            created or 0)  # fmt: skip


def _write_events(
    conn: Connection,
    scan: RepositoryScan,
    asked: list[tuple[StagedTag, str | None]],
    now: int,
    sinks: Sequence[str],
) -> int:
    """The events, in listing order, and one pending delivery per sink for each."""
    if not asked:
        return 0
    lock_event_order(conn)
    after = int(_LAST_SEQ.rows(conn)[0][0])
    where = (scan.account, scan.repository)
    _INSERT_EVENT.run_many(
        conn,
        [(item.event_id or str(uuid.uuid4()), item.event, scan.account, scan.registry,
          scan.repository, item.tag, item.digest, previous, now) for item, previous in asked],
    )  # fmt: skip
    targets = list(dict.fromkeys(sinks))
    if targets:
        seqs = [row[0] for row in _NEW_SEQS.rows(conn, (*where, after))]
        _INSERT_DELIVERY.run_many(
            conn, [(seq, sink, *where, "pending", 0, now) for seq in seqs for sink in targets]
        )
    return len(asked)
