"""One verified pushed tag into the index, with its event, in one transaction (push notifications).

A scan replaces a whole repository; a push notification changes one tag and must leave the
others alone. `record_push` inserts or updates that tag, writes its history, and records the
event with one pending delivery per sink, following the scan's rules (`indexer/plan.py`):
- a tag not in the index → added, event `tag_added`;
- a known tag at another digest → changed; event `digest_changed` only with `trackDigests`;
- a known tag without a digest (tracking was off) → the digest is filled in, silently;
- the same digest (the registry sends a notification per manifest, clients re-push) → nothing.

A scan of the same repository may be in progress (it lists, then merges in one transaction at
the end). Left alone, its merge would delete a tag pushed after its listing (not staged → gone)
and the next scan would add it again with a second event; and a scan that already staged the
tag as new would record a second event for it. So the pushed tag is also staged into that scan
as "still there, nothing to record": the merge keeps it and records no event for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection

from regwatch.store.accounts import ensure_account, ensure_repository, require_account
from regwatch.store.dialect import lock_event_order
from regwatch.store.records import DIGEST_CHANGED, TAG_ADDED, StagedTag, to_ms
from regwatch.store.schema import deliveries, events, repositories, scan_staging, tag_history, tags
from regwatch.store.search_upkeep import last_tag_id
from regwatch.store.sorting import semver_key

PushChange = Literal["added", "changed", "filled", "unchanged"]


@dataclass(frozen=True)
class PushOutcome:
    change: PushChange
    event_id: str | None  # the event recorded, if any
    previous_digest: str | None = None


def record_push(
    conn: Connection,
    *,
    account: str,
    registry: str,
    repository: str,
    image: StagedTag,
    track_digests: bool,
    sinks: Sequence[str],
    now: int,
) -> PushOutcome:
    """Apply one verified tag (see the module docstring); call inside one write transaction."""
    ensure_account(conn, account, registry, now)
    key = require_account(conn, account, lock=True)  # serialises tag ids per account (PostgreSQL)
    ensure_repository(conn, account, repository)
    where = _tag(account, repository, image.tag)
    row = conn.execute(select(tags.c.digest).where(where)).one_or_none()
    if row is None:
        _insert_tag(conn, key, account, registry, repository, image, now)
        change: PushChange = "added"
        kind: str | None = TAG_ADDED
        previous = None
    elif row.digest == image.digest or image.digest is None:
        _stage_into_running_scan(conn, account, registry, repository, image.tag)
        return PushOutcome("unchanged", None, row.digest)
    else:
        previous = row.digest
        _update_tag(conn, where, image, now)
        change = "filled" if previous is None else "changed"
        kind = DIGEST_CHANGED if change == "changed" and track_digests else None
    _history(conn, account, repository, image, "added" if row is None else "changed", previous, now)
    event_id = _event(conn, account, registry, repository, image, kind, previous, sinks, now)
    _touch_repository(conn, account, repository, now)
    _stage_into_running_scan(conn, account, registry, repository, image.tag)
    return PushOutcome(change, event_id, previous)


def _tag(account: str, repository: str, tag: str) -> Any:
    return and_(tags.c.account == account, tags.c.repository == repository, tags.c.tag == tag)


def _metadata(image: StagedTag) -> dict[str, Any]:
    created = to_ms(image.created) if image.created else None
    return {
        "digest": image.digest,
        "index_digest": image.index_digest,
        "platform_digests": dict(image.platform_digests) or None,
        "created_ms": created,
        "labels": dict(image.labels) or None,
        "date_key": created or 0,
    }


def _insert_tag(
    conn: Connection,
    key: int,
    account: str,
    registry: str,
    repository: str,
    image: StagedTag,
    now: int,
) -> None:
    last_id = last_tag_id(conn, key)
    conn.execute(
        insert(tags).values(
            id=last_id + 1,
            account=account,
            repository=repository,
            tag=image.tag,
            registry=registry,
            ref=f"{registry}/{repository}:{image.tag}".lower(),
            first_seen=now,
            last_seen=now,
            last_changed=now,
            semver_key=semver_key(image.tag),
            **_metadata(image),
        )
    )


def _update_tag(conn: Connection, where: Any, image: StagedTag, now: int) -> None:
    values = _metadata(image)
    if not image.metadata:  # only the digest is known (a HEAD): keep dates and labels
        values = {"digest": image.digest}
    conn.execute(update(tags).where(where).values(last_seen=now, last_changed=now, **values))


def _history(
    conn: Connection,
    account: str,
    repository: str,
    image: StagedTag,
    kind: str,
    previous: str | None,
    now: int,
) -> None:
    conn.execute(
        insert(tag_history).values(
            account=account,
            repository=repository,
            tag=image.tag,
            kind=kind,
            digest=image.digest,
            previous_digest=previous,
            at=now,
        )
    )


def _event(
    conn: Connection,
    account: str,
    registry: str,
    repository: str,
    image: StagedTag,
    kind: str | None,
    previous: str | None,
    sinks: Sequence[str],
    now: int,
) -> str | None:
    if kind is None:
        return None
    event_id = image.event_id or str(uuid.uuid4())
    lock_event_order(conn)
    seq = conn.execute(
        insert(events)
        .values(
            id=event_id,
            kind=kind,
            account=account,
            registry=registry,
            repository=repository,
            tag=image.tag,
            digest=image.digest,
            previous_digest=previous,
            created_at=now,
        )
        .returning(events.c.seq)
    ).scalar_one()
    rows = [
        {
            "event_seq": seq,
            "sink": sink,
            "account": account,
            "repository": repository,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
        }
        for sink in dict.fromkeys(sinks)
    ]
    if rows:
        conn.execute(insert(deliveries), rows)
    return event_id


def _touch_repository(conn: Connection, account: str, repository: str, now: int) -> None:
    count = conn.execute(
        select(func.count())
        .select_from(tags)
        .where(tags.c.account == account, tags.c.repository == repository)
    ).scalar_one()
    conn.execute(
        update(repositories)
        .where(repositories.c.account == account, repositories.c.name == repository)
        .values(tag_count=count, changed_at=now)
    )


def _stage_into_running_scan(
    conn: Connection, account: str, registry: str, repository: str, tag: str
) -> None:
    """Tell a scan in progress that the tag is there and has nothing to record (see above)."""
    scan_id = conn.execute(
        select(repositories.c.scan_id).where(
            repositories.c.account == account, repositories.c.name == repository
        )
    ).scalar_one_or_none()
    if scan_id is None:
        return
    s = scan_staging
    mine = and_(s.c.scan_id == scan_id, s.c.tag == tag)
    staged = conn.execute(
        update(s).where(mine).values(event_id=None, event_kind=None).returning(s.c.tag)
    ).first()
    if staged is not None:
        return
    position = conn.execute(
        select(func.coalesce(func.max(s.c.position), 0)).where(s.c.scan_id == scan_id)
    ).scalar_one()
    conn.execute(
        insert(s).values(
            scan_id=scan_id,
            tag=tag,
            position=int(position) + 1,
            account=account,
            repository=repository,
            ref=f"{registry}/{repository}:{tag}".lower(),
            semver_key=semver_key(tag),
            has_metadata=False,
        )
    )
