"""JSON views of events, deliveries and the outbox (for `GET /events` and `regwatch events`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from regwatch.events.payloads import iso_time
from regwatch.events.ratecap import RateCaps
from regwatch.store.deliveries import DeliveryView, EventView, OutboxCounts


def _iso(moment: datetime | None) -> str | None:
    return iso_time(moment) if moment is not None else None


def delivery_json(delivery: DeliveryView) -> dict[str, Any]:
    pending = delivery.status == "pending"
    return {
        "sink": delivery.sink,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "nextAttemptAt": _iso(delivery.next_attempt_at) if pending else None,
        "inFlight": delivery.leased,
        "lastError": delivery.last_error,
        "finishedAt": _iso(delivery.delivered_at),
    }


def event_json(view: EventView) -> dict[str, Any]:
    event = view.event
    return {
        "seq": event.seq,
        "id": event.id,
        "kind": event.kind,
        "account": event.account,
        "registry": event.registry,
        "repository": event.repository,
        "tag": event.tag,
        "digest": event.digest,
        "previousDigest": event.previous_digest,
        "createdAt": iso_time(event.created_at),
        "deliveries": [delivery_json(d) for d in view.deliveries],
    }


def outbox_json(
    counts: OutboxCounts,
    *,
    rate_caps: RateCaps | None = None,
    dispatching: bool | None = None,
) -> dict[str, Any]:
    """Pending and dead deliveries per sink, and the (sink, account) pairs held by a rate cap."""
    pending: dict[str, int] = {}
    dead: dict[str, int] = {}
    for (sink, status), count in sorted(counts.by_sink_status.items()):
        (pending if status == "pending" else dead)[sink] = count
    capped = []
    limited = set(rate_caps.limited_keys()) if rate_caps is not None else set()
    for (sink, account), count in sorted(counts.pending_by_account.items()):
        if (sink, account) in limited and rate_caps is not None:
            cap = rate_caps.cap(account)
            capped.append(
                {
                    "sink": sink,
                    "account": account,
                    "held": count,
                    "perMinute": cap.per_minute,
                    "burst": cap.burst,
                }
            )
    return {"dispatching": dispatching, "pending": pending, "dead": dead, "rateCapped": capped}
