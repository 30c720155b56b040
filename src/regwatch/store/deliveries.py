"""The outbox beyond claim/complete/fail (`outbox.py`): skips, rate-cap holds, redelivery, views.

Delivery statuses: `pending` (due at `next_attempt_at`, maybe leased), `delivered`, `dead`
(dead-lettered after the retry window or a permanent refusal) and `skipped` (the sink's
triggers/filters do not want the event; `last_error` says why). Only `pending` blocks later
deliveries of the same sink and repository.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from regwatch.store.accounts import clip
from regwatch.store.outbox import lease_deliveries, stored_event
from regwatch.store.records import Delivery, StoredEvent, at_ms, from_ms
from regwatch.store.schema import deliveries, events

d = deliveries


@dataclass(frozen=True)
class DeliveryView:
    id: int
    sink: str
    status: str  # pending | delivered | dead | skipped
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None  # when it was delivered, skipped or dead-lettered
    leased: bool


@dataclass(frozen=True)
class EventView:
    event: StoredEvent
    deliveries: tuple[DeliveryView, ...]


@dataclass(frozen=True)
class OutboxCounts:
    by_sink_status: dict[tuple[str, str], int]  # (sink, "pending" | "dead") -> deliveries
    pending_by_account: dict[tuple[str, str], int]  # (sink, account) -> pending deliveries


def _held(delivery_id: int, holder: str) -> Any:
    return and_(d.c.id == delivery_id, d.c.lease_holder == holder)


def skip_delivery(conn: Connection, delivery_id: int, holder: str, reason: str, now: int) -> bool:
    """Complete a leased delivery without sending it (the sink does not want the event)."""
    result = conn.execute(
        update(d)
        .where(_held(delivery_id, holder))
        .values(
            status="skipped",
            last_error=clip(reason),
            delivered_at=now,
            lease_holder=None,
            lease_expires_at=None,
        )
    )
    return bool(result.rowcount)


def defer_delivery(conn: Connection, delivery_id: int, holder: str, until: int, note: str) -> bool:
    """Give a leased delivery back untried until `until` (rate cap): the attempt is not counted."""
    result = conn.execute(
        update(d)
        .where(_held(delivery_id, holder))
        .values(
            next_attempt_at=until,
            attempts=case((d.c.attempts > 0, d.c.attempts - 1), else_=0),
            last_error=clip(note),
            lease_holder=None,
            lease_expires_at=None,
        )
    )
    return bool(result.rowcount)


def _heads() -> Any:
    """Per sink and repository, the oldest pending delivery: the only one that may go out.

    The same rule as `outbox.claim_deliveries`' NOT EXISTS, written as one GROUP BY over the
    pending rows: PostgreSQL plans that anti-join as a nested loop until the table has been
    ANALYZEd (3 s per claim with 5,000 pending deliveries, measured), and even then it is
    quadratic per repository; the aggregate is linear.
    """
    return (
        select(d.c.sink, func.min(d.c.event_seq).label("seq"))
        .where(d.c.status == "pending")
        .group_by(d.c.sink, d.c.account, d.c.repository)
        .cte("heads")
    )


def _head_rows(heads: Any) -> Any:
    return and_(d.c.sink == heads.c.sink, d.c.event_seq == heads.c.seq)


def claim_heads(
    conn: Connection, *, holder: str, now: int, lease_ms: int, limit: int
) -> list[Delivery]:
    """Lease up to `limit` due deliveries, at most one per sink and repository, oldest first."""
    heads = _heads()
    due = (
        select(d.c.id)
        .join(heads, _head_rows(heads))
        .where(
            d.c.next_attempt_at <= now,
            or_(d.c.lease_expires_at.is_(None), d.c.lease_expires_at <= now),
        )
        .order_by(d.c.event_seq, d.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=d)
    )
    ids = list(conn.execute(due).scalars())
    return lease_deliveries(conn, ids, holder=holder, now=now, lease_ms=lease_ms)


def next_due(conn: Connection) -> int | None:
    """When the next claimable delivery becomes due (ms), ignoring ones waiting behind others."""
    heads = _heads()
    leased_until = func.coalesce(d.c.lease_expires_at, 0)
    due_at = case((leased_until > d.c.next_attempt_at, leased_until), else_=d.c.next_attempt_at)
    value = conn.execute(
        select(func.min(due_at)).select_from(d).join(heads, _head_rows(heads))
    ).scalar_one_or_none()
    return None if value is None else int(value)


def delivered_since(conn: Connection, sink: str, account: str, since: int) -> int:
    """Deliveries of the account that went out to the sink since `since` (seeds a rate cap)."""
    return int(
        conn.execute(
            select(func.count()).where(
                d.c.sink == sink,
                d.c.account == account,
                d.c.status == "delivered",
                d.c.delivered_at >= since,
            )
        ).scalar_one()
    )


def redeliver(conn: Connection, event_seq: int, sinks: Sequence[str], now: int) -> int:
    """Queue the event again for `sinks` (adding deliveries for sinks it never had); a count."""
    event = conn.execute(
        select(events.c.account, events.c.repository).where(events.c.seq == event_seq)
    ).one()
    have = set(conn.execute(select(d.c.sink).where(d.c.event_seq == event_seq)).scalars())
    fresh = {
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "delivered_at": None,
        "lease_holder": None,
        "lease_expires_at": None,
    }
    count = 0
    for sink in dict.fromkeys(sinks):
        if sink in have:
            where = and_(d.c.event_seq == event_seq, d.c.sink == sink)
            count += conn.execute(update(d).where(where).values(fresh)).rowcount
        else:
            row = {"event_seq": event_seq, "sink": sink, **fresh}
            conn.execute(
                insert(d).values(account=event.account, repository=event.repository, **row)
            )
            count += 1
    return count


def _delivery_view(row: Any, now: int) -> DeliveryView:
    return DeliveryView(
        id=int(row.id),
        sink=row.sink,
        status=row.status,
        attempts=int(row.attempts),
        next_attempt_at=at_ms(row.next_attempt_at),
        last_error=row.last_error,
        delivered_at=from_ms(row.delivered_at),
        leased=row.lease_expires_at is not None and row.lease_expires_at > now,
    )


def _views(conn: Connection, found: list[StoredEvent], now: int) -> list[EventView]:
    if not found:
        return []
    rows = conn.execute(
        select(d).where(d.c.event_seq.in_([e.seq for e in found])).order_by(d.c.sink)
    )
    by_seq: dict[int, list[DeliveryView]] = {}
    for row in rows:
        by_seq.setdefault(int(row.event_seq), []).append(_delivery_view(row, now))
    return [EventView(e, tuple(by_seq.get(e.seq, ()))) for e in found]


def recent_events(
    conn: Connection,
    now: int,
    *,
    account: str | None = None,
    repository: str | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[EventView]:
    """The newest events first, each with its deliveries."""
    query = select(events).order_by(events.c.seq.desc()).limit(limit)
    if account is not None:
        query = query.where(events.c.account == account)
    if repository is not None:
        query = query.where(events.c.repository == repository)
    if before_seq is not None:
        query = query.where(events.c.seq < before_seq)
    return _views(conn, [stored_event(row) for row in conn.execute(query)], now)


def find_event(conn: Connection, ref: str, now: int) -> EventView | None:
    """An event by id, or by sequence number when `ref` is all digits."""
    where = events.c.seq == int(ref) if ref.isdigit() else events.c.id == ref
    row = conn.execute(select(events).where(where)).one_or_none()
    if row is None:
        return None
    return _views(conn, [stored_event(row)], now)[0]


def outbox_counts(conn: Connection) -> OutboxCounts:
    """Pending and dead deliveries per sink, pending ones per sink and account (delivered and
    skipped ones are not counted: the table keeps them for the retention, see prune.py)."""
    by_status = conn.execute(
        select(d.c.sink, d.c.status, func.count())
        .where(d.c.status.in_(("pending", "dead")))
        .group_by(d.c.sink, d.c.status)
    )
    pending = conn.execute(
        select(d.c.sink, d.c.account, func.count())
        .where(d.c.status == "pending")
        .group_by(d.c.sink, d.c.account)
    )
    return OutboxCounts(
        by_sink_status={(r[0], r[1]): int(r[2]) for r in by_status},
        pending_by_account={(r[0], r[1]): int(r[2]) for r in pending},
    )
