"""Rate caps: a burst goes out at the capped rate, each held delivery gets one slot."""

from __future__ import annotations

from regwatch.config.triggers import RateCap
from regwatch.events.ratecap import RateCaps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def caps(per_minute: float = 60, burst: int = 3, clock: Clock | None = None) -> RateCaps:
    cap = RateCap(per_minute=per_minute, burst=burst)
    return RateCaps(lambda account: cap, clock=clock or Clock())


def test_a_burst_goes_out_then_the_rest_get_one_slot_each_at_the_capped_rate() -> None:
    clock = Clock()
    rc = caps(per_minute=60, burst=3, clock=clock)
    waits = [rc.take("ci", "hub", delivery) for delivery in range(1, 8)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == [1.0, 2.0, 3.0, 4.0]  # one per second: held, not dropped
    assert rc.limited("ci", "hub")


def test_a_held_delivery_goes_out_at_its_slot_without_taking_another() -> None:
    clock = Clock()
    rc = caps(per_minute=60, burst=1, clock=clock)
    assert rc.take("ci", "hub", 1) == 0.0
    assert rc.take("ci", "hub", 2) == 1.0
    assert rc.take("ci", "hub", 3) == 2.0
    clock.now += 0.5
    assert rc.take("ci", "hub", 2) == 0.5  # back early: still waits for its slot
    clock.now += 0.5
    assert rc.take("ci", "hub", 2) == 0.0
    clock.now += 1.0
    assert rc.take("ci", "hub", 3) == 0.0
    assert rc.take("ci", "hub", 4) == 1.0  # the next new one queues after the reserved ones


def test_caps_are_per_account_and_per_sink() -> None:
    rc = caps(burst=2)
    assert rc.take("ci", "hub", 1) == rc.take("ci", "hub", 2) == 0.0
    assert rc.take("ci", "hub", 3) > 0
    assert rc.take("ci", "gcr", 4) == 0.0
    assert rc.take("echo", "hub", 5) == 0.0
    assert rc.limited("ci", "hub")
    assert not rc.limited("ci", "gcr")
    assert set(rc.limited_keys()) == {("ci", "hub")}


def test_the_bucket_refills_at_the_rate() -> None:
    clock = Clock()
    rc = caps(per_minute=120, burst=2, clock=clock)
    assert [rc.take("ci", "a", d) for d in (1, 2)] == [0.0, 0.0]
    clock.now += 1.0  # two more tokens at 2/s
    assert [rc.take("ci", "a", d) for d in (3, 4)] == [0.0, 0.0]
    assert rc.take("ci", "a", 5) == 0.5
    clock.now += 10
    assert not rc.limited("ci", "a")


def test_a_seeded_cap_does_not_grant_a_fresh_burst_after_a_restart() -> None:
    clock = Clock()
    rc = caps(per_minute=60, burst=3, clock=clock)
    rc.seed("ci", "hub", 3)  # three went out in the last minute before the restart
    assert rc.known("ci", "hub")
    assert rc.take("ci", "hub", 1) > 0


def test_a_changed_cap_applies_on_next_use() -> None:
    clock = Clock()
    current = {"cap": RateCap(per_minute=60, burst=1)}
    rc = RateCaps(lambda account: current["cap"], clock=clock)
    assert rc.take("ci", "a", 1) == 0.0
    assert rc.take("ci", "a", 2) == 1.0
    current["cap"] = RateCap(per_minute=6000, burst=100)
    assert rc.take("ci", "a", 3) == 0.0
    assert rc.cap("a").burst == 100
