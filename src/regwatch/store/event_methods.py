"""Store methods for tag history, events, the outbox and its deliveries, push notifications and
leases: a mixin of `regwatch.store.store.Store`, apart to keep store.py small.

The methods use the transaction helpers Store defines (`_read`, `_write`, `_now`); the stubs below
declare them for mypy only. Writers are marked `@writes` like Store's own (AsyncStore finds the
marker on the function, wherever the class that defines it).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from regwatch.store import deliveries, outbox, prune, push, queries
from regwatch.store.marks import writes
from regwatch.store.records import (
    Delivery,
    HistoryEntry,
    StagedTag,
    StoredEvent,
    duration_ms,
    from_ms,
    to_ms,
)


class EventMethods:
    """Tag history, events, outbox deliveries, push notifications and leases (see Store)."""

    if TYPE_CHECKING:

        def _read(self) -> AbstractContextManager[Connection]: ...

        def _write(self) -> AbstractContextManager[Connection]: ...

        def _now(self) -> int: ...

    def tag_history(
        self, account: str, repository: str, tag: str | None = None, limit: int | None = None
    ) -> list[HistoryEntry]:
        with self._read() as conn:
            return queries.history(conn, account, repository, tag, limit)

    # --- events, outbox, leases ------------------------------------------------------------
    def events(
        self, *, after_seq: int = 0, account: str | None = None, limit: int = 100
    ) -> list[StoredEvent]:
        with self._read() as conn:
            return outbox.list_events(conn, after_seq=after_seq, account=account, limit=limit)

    @writes
    def claim_deliveries(
        self, holder: str, *, lease: timedelta, limit: int = 10, sink: str | None = None
    ) -> list[Delivery]:
        with self._write() as conn:
            return outbox.claim_deliveries(
                conn,
                holder=holder,
                now=self._now(),
                lease_ms=duration_ms(lease),
                limit=limit,
                sink=sink,
            )

    @writes
    def complete_delivery(self, delivery_id: int, holder: str) -> bool:
        with self._write() as conn:
            return outbox.complete_delivery(conn, delivery_id, holder, self._now())

    @writes
    def fail_delivery(
        self, delivery_id: int, holder: str, error: str, *, retry_at: datetime | None
    ) -> bool:
        """A failed attempt: retry at `retry_at`, or dead-letter the delivery when None."""
        retry = None if retry_at is None else to_ms(retry_at)
        with self._write() as conn:
            return outbox.fail_delivery(conn, delivery_id, holder, error, retry, self._now())

    @writes
    def acquire_lease(self, name: str, holder: str, ttl: timedelta) -> bool:
        with self._write() as conn:
            ttl_ms = duration_ms(ttl)
            return outbox.acquire_lease(conn, name, holder, self._now(), ttl_ms)

    @writes
    def release_lease(self, name: str, holder: str) -> bool:
        with self._write() as conn:
            return outbox.release_lease(conn, name, holder)

    def lease_holder(self, name: str) -> str | None:
        with self._read() as conn:
            return outbox.lease_holder(conn, name, self._now())

    # --- push notifications, outbox administration (store/push.py, store/deliveries.py) --------
    @writes
    def record_push(
        self,
        account: str,
        registry: str,
        repository: str,
        image: StagedTag,
        *,
        track_digests: bool,
        sinks: Sequence[str] = (),
    ) -> push.PushOutcome:
        """One verified pushed tag: index change and event in one transaction (see push.py)."""
        with self._write() as conn:
            return push.record_push(
                conn,
                account=account,
                registry=registry,
                repository=repository,
                image=image,
                track_digests=track_digests,
                sinks=sinks,
                now=self._now(),
            )

    @writes
    def claim_next_deliveries(
        self, holder: str, *, lease: timedelta, limit: int = 10
    ) -> list[Delivery]:
        """`claim_deliveries` for every sink, with a query that stays linear on PostgreSQL."""
        with self._write() as conn:
            return deliveries.claim_heads(
                conn,
                holder=holder,
                now=self._now(),
                lease_ms=duration_ms(lease),
                limit=limit,
            )

    @writes
    def skip_delivery(self, delivery_id: int, holder: str, reason: str) -> bool:
        with self._write() as conn:
            return deliveries.skip_delivery(conn, delivery_id, holder, reason, self._now())

    @writes
    def defer_delivery(self, delivery_id: int, holder: str, until: datetime, note: str) -> bool:
        with self._write() as conn:
            return deliveries.defer_delivery(conn, delivery_id, holder, to_ms(until), note)

    @writes
    def redeliver(self, event_seq: int, sinks: Sequence[str]) -> int:
        with self._write() as conn:
            return deliveries.redeliver(conn, event_seq, sinks, self._now())

    def next_delivery_due(self) -> datetime | None:
        with self._read() as conn:
            due = deliveries.next_due(conn)
        return None if due is None else from_ms(due)

    def delivered_since(self, sink: str, account: str, since: datetime) -> int:
        with self._read() as conn:
            return deliveries.delivered_since(conn, sink, account, to_ms(since))

    def recent_events(
        self,
        *,
        account: str | None = None,
        repository: str | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[deliveries.EventView]:
        with self._read() as conn:
            return deliveries.recent_events(
                conn,
                self._now(),
                account=account,
                repository=repository,
                before_seq=before_seq,
                limit=limit,
            )

    def find_event(self, ref: str) -> deliveries.EventView | None:
        """An event (with its deliveries) by id, or by sequence number."""
        with self._read() as conn:
            return deliveries.find_event(conn, ref, self._now())

    def outbox_counts(self) -> deliveries.OutboxCounts:
        with self._read() as conn:
            return deliveries.outbox_counts(conn)

    @writes
    def prune_outbox(self, older_than: datetime, *, limit: int = 1000) -> prune.Pruned:
        """Delete deliveries finished before `older_than`, then the events older than it that
        have no delivery left; at most `limit` rows of each (see store/prune.py)."""
        with self._write() as conn:
            return prune.prune_outbox(conn, to_ms(older_than), limit)
