"""Per-account rate caps, keyed by (sink, account). Pure (clock injected).

Upstream's answer to a burst (Igor's `itemUpperThreshold`) was to deliver nothing and wedge the
account until someone raised the threshold, which then fired every old tag at once. Here a burst
goes out at the capped rate instead: `burst` deliveries at once, then `perMinute`; the rest wait
in the outbox, durably and in order, and the cap says so (status, `regwatch_rate_cap_held`).
Nothing is dropped.

The algorithm is GCRA (a token bucket expressed as a "theoretical arrival time"), with
reservations: a delivery over the cap is given the next free slot and is deferred until then, so
each held delivery is looked at once per slot rather than every time the worker polls (5,000
held deliveries cost 5,000 deferrals, not 5,000 per token). A delivery coming back at its slot
goes out without taking another one.

The state lives in the dispatching process; only one instance dispatches at a time (the outbox
lease), and a new dispatcher seeds each cap with the deliveries of the last minute, so a restart
does not grant a fresh burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from regwatch.config.triggers import RateCap

Key = tuple[str, str]  # (sink, account)
RESERVATION_TTL = 3600.0


@dataclass
class _Cell:
    cap: RateCap
    tat: float  # theoretical arrival time of the next delivery
    reservations: dict[int, float] = field(default_factory=dict)  # delivery id -> slot

    @property
    def interval(self) -> float:
        return 60.0 / self.cap.per_minute

    @property
    def tolerance(self) -> float:
        return (self.cap.burst - 1) * self.interval


class RateCaps:
    """GCRA cells per (sink, account), with each account's cap from `cap_for`."""

    def __init__(
        self, cap_for: Callable[[str], RateCap], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cap_for = cap_for
        self._clock = clock
        self._cells: dict[Key, _Cell] = {}

    def set_caps(self, cap_for: Callable[[str], RateCap]) -> None:
        """New settings: a changed cap starts afresh on its next use (its held deliveries are
        looked at again when they come back)."""
        self._cap_for = cap_for

    def known(self, sink: str, account: str) -> bool:
        return (sink, account) in self._cells

    def seed(self, sink: str, account: str, used: int) -> None:
        """Start the cap as if `used` deliveries had just gone out."""
        cell = self._cell(sink, account)
        cell.tat = max(cell.tat, self._clock()) + used * cell.interval

    def take(self, sink: str, account: str, delivery_id: int) -> float:
        """0.0 when the delivery may go now; else the seconds until its reserved slot."""
        cell = self._cell(sink, account)
        now = self._clock()
        slot = cell.reservations.get(delivery_id)
        if slot is not None:
            if now >= slot - 0.001:
                del cell.reservations[delivery_id]
                return 0.0
            return slot - now
        tat = max(cell.tat, now)
        cell.tat = tat + cell.interval
        if tat - now <= cell.tolerance:
            return 0.0
        slot = tat - cell.tolerance
        cell.reservations[delivery_id] = slot
        self._prune(cell, now)
        return slot - now

    def limited(self, sink: str, account: str) -> bool:
        """True while the account is over its cap for the sink (deliveries are being held)."""
        cell = self._cells.get((sink, account))
        return cell is not None and cell.tat - self._clock() > cell.tolerance

    def limited_keys(self) -> list[Key]:
        return [key for key in self._cells if self.limited(*key)]

    def cap(self, account: str) -> RateCap:
        return self._cap_for(account)

    def _cell(self, sink: str, account: str) -> _Cell:
        cap = self._cap_for(account)
        cell = self._cells.get((sink, account))
        if cell is None or cell.cap != cap:  # new, or the cap was changed: start afresh
            cell = self._cells[(sink, account)] = _Cell(cap, self._clock())
        return cell

    @staticmethod
    def _prune(cell: _Cell, now: float) -> None:
        """Forget reservations whose delivery never came back (redelivered, deleted…)."""
        if len(cell.reservations) > 1000:
            stale = [d for d, slot in cell.reservations.items() if slot < now - RESERVATION_TTL]
            for delivery_id in stale:
                del cell.reservations[delivery_id]
