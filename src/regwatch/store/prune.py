"""Pruning the outbox: finished deliveries and old events, after a retention period.

Without it the `deliveries` and `events` tables grow by one row per event and sink forever. A
prune, at a cutoff (now - retention):
- deletes finished deliveries (delivered, skipped or dead-lettered) that finished before the
  cutoff. A finished delivery is kept for the retention, not deleted at once: `regwatch events
  show` / GET /events/{id} show what became of each event, and the rate caps are seeded from the
  deliveries of the last minute (`deliveries.delivered_since`);
- then deletes events created before the cutoff that have no delivery left (so never one with a
  pending delivery, nor one redelivered recently).
Pending deliveries, and so their events, are never pruned, whatever their age. The tag history
(`tag_history`, read by `regwatch status`, triggers and `Store.tag_history`) is another table and
is not touched. The newest event and the newest delivery are always kept: SQLite reuses the
largest rowid once it is deleted, and event sequence numbers are cursors (`events(after_seq=…)`,
GET /events) that must never go back.

Each call deletes at most `limit` rows of each table (one short write transaction; the outbox
worker calls again while a call was full).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select
from sqlalchemy.engine import Connection

from regwatch.store.schema import deliveries, events

FINISHED = ("delivered", "skipped", "dead")


@dataclass(frozen=True)
class Pruned:
    deliveries: int
    events: int

    def full(self, limit: int) -> bool:
        """True when a table had `limit` rows to delete: there may be more."""
        return self.deliveries >= limit or self.events >= limit


def prune_outbox(conn: Connection, cutoff: int, limit: int) -> Pruned:
    """Delete finished deliveries and then delivery-less events older than `cutoff` (ms)."""
    d = deliveries
    # dead-lettered rows written before fail_delivery recorded the time: their last attempt
    finished_at = func.coalesce(d.c.delivered_at, d.c.next_attempt_at)
    newest_delivery = select(func.max(d.c.id)).scalar_subquery()
    doomed = (
        select(d.c.id)
        .where(d.c.status.in_(FINISHED), finished_at < cutoff, d.c.id < newest_delivery)
        .order_by(d.c.id)
        .limit(limit)
    )
    ids = list(conn.execute(doomed).scalars())
    if ids:
        conn.execute(delete(d).where(d.c.id.in_(ids)))
    newest_event = select(func.max(events.c.seq)).scalar_subquery()
    old = (
        select(events.c.seq)
        .where(
            events.c.created_at < cutoff,
            events.c.seq < newest_event,
            ~exists().where(d.c.event_seq == events.c.seq),
        )
        .order_by(events.c.seq)
        .limit(limit)
    )
    seqs = list(conn.execute(old).scalars())
    if seqs:
        conn.execute(delete(events).where(events.c.seq.in_(seqs)))
    return Pruned(deliveries=len(ids), events=len(seqs))
