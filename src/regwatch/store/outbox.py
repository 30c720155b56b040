"""Events, the delivery outbox, and named leases (for several instances on one database).

Events are written by `finish_repository_scan` in the same transaction as the index change, with
one `pending` delivery per configured sink. A dispatcher claims deliveries with a lease (so a
crashed instance's claims come back after the lease expires), and reports each as delivered, to
retry at a later time, or dead (dead-lettered). Per sink and repository, a delivery is claimable
only when no earlier delivery of the same repository is still pending: events of one repository
reach a sink in order; different repositories do not wait for each other.
On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so instances never claim the same rows
(SQLite has one writer, the clause is dropped there).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, exists, not_, or_, select, update
from sqlalchemy.engine import Connection, Row

from regwatch.store.accounts import clip
from regwatch.store.dialect import conditional_upsert
from regwatch.store.records import Delivery, StoredEvent, at_ms
from regwatch.store.schema import deliveries, events, leases


def stored_event(row: Row[Any]) -> StoredEvent:
    return StoredEvent(
        seq=int(row.seq),
        id=row.id,
        kind=row.kind,
        account=row.account,
        registry=row.registry,
        repository=row.repository,
        tag=row.tag,
        digest=row.digest,
        previous_digest=row.previous_digest,
        created_at=at_ms(row.created_at),
    )


def list_events(
    conn: Connection, *, after_seq: int = 0, account: str | None = None, limit: int = 100
) -> list[StoredEvent]:
    query = select(events).where(events.c.seq > after_seq).order_by(events.c.seq).limit(limit)
    if account is not None:
        query = query.where(events.c.account == account)
    return [stored_event(row) for row in conn.execute(query)]


def claim_deliveries(
    conn: Connection, *, holder: str, now: int, lease_ms: int, limit: int, sink: str | None
) -> list[Delivery]:
    """Lease up to `limit` due deliveries (at most one per sink and repository)."""
    d = deliveries
    earlier = deliveries.alias("earlier")
    blocked = exists().where(
        earlier.c.sink == d.c.sink,
        earlier.c.account == d.c.account,
        earlier.c.repository == d.c.repository,
        earlier.c.event_seq < d.c.event_seq,
        earlier.c.status == "pending",
    )
    due = (
        select(d.c.id)
        .where(
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at <= now),
            not_(blocked),
        )
        .order_by(d.c.event_seq, d.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=d)
    )
    if sink is not None:
        due = due.where(d.c.sink == sink)
    ids = list(conn.execute(due).scalars())
    return lease_deliveries(conn, ids, holder=holder, now=now, lease_ms=lease_ms)


def lease_deliveries(
    conn: Connection, ids: list[int], *, holder: str, now: int, lease_ms: int
) -> list[Delivery]:
    """Lease the chosen deliveries to `holder` (an attempt each) and load them with their events,
    oldest first."""
    if not ids:
        return []
    d = deliveries
    conn.execute(
        update(d)
        .where(d.c.id.in_(ids))
        .values(lease_holder=holder, lease_expires_at=now + lease_ms, attempts=d.c.attempts + 1)
    )
    rows = conn.execute(
        select(d, *[c.label(f"e_{c.name}") for c in events.c])
        .join(events, events.c.seq == d.c.event_seq)
        .where(d.c.id.in_(ids))
        .order_by(d.c.event_seq, d.c.id)
    )
    return [_delivery(row) for row in rows]


def _delivery(row: Row[Any]) -> Delivery:
    mapping = row._mapping
    event = StoredEvent(
        seq=int(mapping["e_seq"]),
        id=mapping["e_id"],
        kind=mapping["e_kind"],
        account=mapping["e_account"],
        registry=mapping["e_registry"],
        repository=mapping["e_repository"],
        tag=mapping["e_tag"],
        digest=mapping["e_digest"],
        previous_digest=mapping["e_previous_digest"],
        created_at=at_ms(mapping["e_created_at"]),
    )
    return Delivery(
        id=int(row.id),
        sink=row.sink,
        event=event,
        attempts=int(row.attempts),
        status=row.status,
        next_attempt_at=at_ms(row.next_attempt_at),
        last_error=row.last_error,
    )


def _held(delivery_id: int, holder: str) -> Any:
    return and_(deliveries.c.id == delivery_id, deliveries.c.lease_holder == holder)


def complete_delivery(conn: Connection, delivery_id: int, holder: str, now: int) -> bool:
    """Mark a leased delivery delivered; False when the lease was lost (expired and re-claimed)."""
    result = conn.execute(
        update(deliveries)
        .where(_held(delivery_id, holder))
        .values(status="delivered", delivered_at=now, lease_holder=None, lease_expires_at=None)
    )
    return bool(result.rowcount)


def fail_delivery(
    conn: Connection,
    delivery_id: int,
    holder: str,
    error: str,
    retry_at: int | None,
    now: int | None = None,
) -> bool:
    """Record a failed attempt: retry at `retry_at`, or dead-letter it when that is None (at
    `now`: its `delivered_at` is when it finished, which the outbox prune goes by)."""
    values: dict[str, Any] = {
        "last_error": clip(error),
        "lease_holder": None,
        "lease_expires_at": None,
    }
    if retry_at is None:
        values["status"] = "dead"
        values["delivered_at"] = now
    else:
        values["next_attempt_at"] = retry_at
    result = conn.execute(update(deliveries).where(_held(delivery_id, holder)).values(values))
    return bool(result.rowcount)


def acquire_lease(conn: Connection, name: str, holder: str, now: int, ttl_ms: int) -> bool:
    """Take or renew the lease `name` for `holder` until now + ttl; False while another holds it."""
    row = {"name": name, "holder": holder, "expires_at": now + ttl_ms, "acquired_at": now}
    free = or_(leases.c.expires_at <= now, leases.c.holder == holder)
    return conditional_upsert(conn, leases, row, key="name", when=free)


def release_lease(conn: Connection, name: str, holder: str) -> bool:
    result = conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))
    return bool(result.rowcount)


def lease_holder(conn: Connection, name: str, now: int) -> str | None:
    return conn.execute(
        select(leases.c.holder).where(leases.c.name == name, leases.c.expires_at > now)
    ).scalar_one_or_none()
