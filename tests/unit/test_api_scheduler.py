"""The scan scheduler (regwatch.indexer.scheduler), in virtual time.

The scheduler's clock and wait primitive are injected: `VirtualTime` runs the asyncio tasks for
real but moves its clock only when every task is waiting, so intervals of minutes take no time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import TransportError
from regwatch.indexer.scheduler import Scheduler, diff_accounts, first_delay, next_delay


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        timer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + timeout, next(self._seq), timer))
        waiter = asyncio.ensure_future(event.wait())
        await asyncio.wait({waiter, timer}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        timer.cancel()
        return event.is_set()

    @staticmethod
    async def settle() -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await self.settle()
        while self._timers and self._timers[0][0] <= target:
            deadline, _, timer = heapq.heappop(self._timers)
            if timer.done():
                continue
            self.now = max(self.now, deadline)
            timer.set_result(None)
            await self.settle()
        self.now = target
        await self.settle()


@dataclass
class Result:
    status: str = "ok"
    account_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class FakeScans:
    """The injected scan: records (account, virtual time), can fail, can hang on a gate."""

    time: VirtualTime
    calls: list[tuple[str, float]] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    raising: set[str] = field(default_factory=set)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    ignore_stop: bool = False
    running: dict[str, int] = field(default_factory=dict)
    max_running: dict[str, int] = field(default_factory=dict)
    stops_seen: list[str] = field(default_factory=list)

    async def __call__(self, account: DockerRegistryAccount, stop: asyncio.Event) -> Any:
        name = account.name
        self.calls.append((name, self.time.now))
        self.running[name] = self.running.get(name, 0) + 1
        self.max_running[name] = max(self.max_running.get(name, 0), self.running[name])
        try:
            gate = self.gates.get(name)
            if gate is not None:
                waits = [asyncio.ensure_future(gate.wait())]
                if not self.ignore_stop:
                    waits.append(asyncio.ensure_future(stop.wait()))
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for w in waits:
                    w.cancel()
                if stop.is_set():
                    self.stops_seen.append(name)
            if name in self.raising:
                raise TransportError(f"registry of {name}: cannot connect")
            return Result("failed", "catalog failed") if name in self.failing else Result()
        finally:
            self.running[name] -= 1

    def times(self, name: str) -> list[float]:
        return [t for n, t in self.calls if n == name]


def account(name: str, interval: int = 30, **fields: Any) -> DockerRegistryAccount:
    return DockerRegistryAccount.model_validate(
        {
            "name": name,
            "address": "http://127.0.0.1:5000",
            "cacheIntervalSeconds": interval,
            **fields,
        }
    )


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


def make_scheduler(vt: VirtualTime, scans: FakeScans, **kwargs: Any) -> Scheduler:
    kwargs.setdefault("rng", random.Random(5))
    return Scheduler(scans, clock=vt.clock, wall_clock=vt.clock, wait=vt.wait, **kwargs)


async def test_each_account_is_scanned_every_interval_with_jitter(vt: VirtualTime) -> None:
    scans = FakeScans(vt)
    scheduler = make_scheduler(vt, scans, jitter=0.1)
    await scheduler.apply([account("a", 30), account("b", 60)])
    await vt.advance(600)
    a, b = scans.times("a"), scans.times("b")
    assert 0 <= a[0] <= 3
    assert 0 <= b[0] <= 6
    assert all(27 <= g <= 33 for g in gaps(a)), gaps(a)
    assert all(54 <= g <= 66 for g in gaps(b)), gaps(b)
    assert 18 <= len(a) <= 22
    assert 9 <= len(b) <= 11
    assert len(set(gaps(a))) > 1  # jittered, not lockstep
    await scheduler.stop()


async def test_a_scan_now_request_runs_at_once_and_is_coalesced_during_a_scan(
    vt: VirtualTime,
) -> None:
    scans = FakeScans(vt)
    scheduler = make_scheduler(vt, scans, jitter=0.0)
    await scheduler.apply([account("a", 300)])
    await vt.advance(1)
    assert len(scans.calls) == 1
    gate = scans.gates["a"] = asyncio.Event()
    scheduler.request_scan("a")
    await vt.advance(0)
    assert len(scans.calls) == 2
    assert scheduler.accounts["a"].state == "scanning"
    for _ in range(5):  # while it runs: asked five times, one more scan afterwards
        assert scheduler.request_scan("a") is not None
    await vt.advance(10)
    assert len(scans.calls) == 2  # never twice at once
    gate.set()
    await vt.advance(0)
    assert len(scans.calls) == 3
    await vt.advance(299)
    assert len(scans.calls) == 3  # then the interval again
    await vt.advance(2)
    assert len(scans.calls) == 4
    assert scans.max_running["a"] == 1
    assert scheduler.request_scan("unknown") is None
    await scheduler.stop()


async def test_failures_back_off_doubling_and_a_success_resets(vt: VirtualTime) -> None:
    scans = FakeScans(vt, failing={"a"})
    scheduler = make_scheduler(vt, scans, jitter=0.0, max_backoff=100)
    await scheduler.apply([account("a", 10)])
    await vt.advance(300)
    assert gaps(scans.times("a"))[:4] == [20, 40, 80, 100]
    entry = scheduler.accounts["a"]
    assert entry.failures >= 4
    assert entry.state == "backoff"
    assert entry.last_error == "catalog failed"
    scans.failing.clear()
    scheduler.request_scan("a")  # the registry is back: a requested scan succeeds
    await vt.advance(0)
    assert entry.failures == 0
    assert entry.last_error is None
    assert entry.last_success_at == vt.now
    count = len(scans.calls)
    await vt.advance(10)
    assert len(scans.calls) == count + 1  # back to the plain interval


async def test_a_scan_that_raises_counts_as_a_failure(vt: VirtualTime) -> None:
    scans = FakeScans(vt, raising={"a"})
    errors: list[str] = []
    scheduler = make_scheduler(
        vt, scans, jitter=0.0, on_error=lambda entry, exc, seconds: errors.append(str(exc))
    )
    await scheduler.apply([account("a", 10)])
    await vt.advance(35)
    assert gaps(scans.times("a")) == [20]
    assert scheduler.accounts["a"].last_error == "registry of a: cannot connect"
    assert errors == ["registry of a: cannot connect"] * 2
    await scheduler.stop()


async def test_a_failing_or_hanging_account_does_not_delay_the_others(vt: VirtualTime) -> None:
    scans = FakeScans(vt, failing={"bad"})
    scans.gates["slow"] = asyncio.Event()  # never opens: a registry that never answers
    scheduler = make_scheduler(vt, scans, jitter=0.0)
    await scheduler.apply([account("bad", 10), account("slow", 10), account("good", 10)])
    await vt.advance(100)
    assert gaps(scans.times("good")) == [10.0] * 10  # 0, 10, …, 100
    assert len(scans.times("slow")) == 1
    assert scans.times("bad") == [0.0, 20.0, 60.0]  # backing off on its own
    await scheduler.stop()
    assert scans.stops_seen == ["slow"]  # the hanging scan was asked to stop


async def test_apply_adds_reschedules_and_removes_accounts(vt: VirtualTime) -> None:
    scans = FakeScans(vt)
    scheduler = make_scheduler(vt, scans, jitter=0.0)
    first = await scheduler.apply([account("a", 10), account("b", 10)])
    assert (first.added, first.updated, first.removed) == (("a", "b"), (), ())
    await vt.advance(25)
    scans.gates["b"] = asyncio.Event()
    await vt.advance(10)  # b is now in the middle of a scan
    assert scheduler.accounts["b"].state == "scanning"
    second = await scheduler.apply([account("a", 50), account("c", 10)])
    assert (second.added, second.updated, second.removed) == (("c",), ("a",), ("b",))
    assert scans.stops_seen == ["b"]  # apply returned only after b's scan stopped
    assert set(scheduler.accounts) == {"a", "c"}
    assert scheduler.accounts["a"].account.cache_interval_seconds == 50
    before = len(scans.times("b"))
    changed_at = vt.now
    await vt.advance(200)
    assert len(scans.times("b")) == before
    a_after = [t for t in scans.times("a") if t >= changed_at]
    assert a_after[0] == changed_at
    assert gaps(a_after) == [50.0] * (len(a_after) - 1)
    unchanged = await scheduler.apply([account("a", 50), account("c", 10)])
    assert (unchanged.added, unchanged.updated, unchanged.removed) == ((), (), ())
    await scheduler.stop()


async def test_stop_waits_for_scans_and_cancels_one_that_ignores_it(vt: VirtualTime) -> None:
    scans = FakeScans(vt, ignore_stop=True)
    scans.gates["a"] = asyncio.Event()
    scheduler = make_scheduler(vt, scans)
    await scheduler.apply([account("a", 10)])
    await vt.advance(5)
    assert scheduler.accounts["a"].state == "scanning"
    task = scheduler.accounts["a"].task
    await asyncio.wait_for(scheduler.stop(timeout=0.05), 5)
    assert task is not None
    assert task.cancelled()
    assert scheduler.accounts == {}
    await scheduler.apply([account("b", 10)])  # a stopped scheduler starts nothing new
    assert scheduler.accounts == {}


def test_diff_accounts_compares_every_setting() -> None:
    old = {"a": account("a"), "b": account("b"), "c": account("c")}
    new = {"c": account("c"), "b": account("b", trackDigests=True), "d": account("d")}
    diff = diff_accounts(old, new)
    assert (diff.added, diff.updated, diff.removed) == (("d",), ("b",), ("a",))


@given(
    interval=st.floats(1, 86_400),
    failures=st.integers(0, 40),
    jitter=st.floats(0, 0.5),
    max_backoff=st.floats(1, 10_000),
    seed=st.integers(0, 2**32),
)
def test_next_delay_stays_within_its_bounds(
    interval: float, failures: int, jitter: float, max_backoff: float, seed: int
) -> None:
    rng = random.Random(seed)
    delay = next_delay(interval, failures, rng, jitter=jitter, max_backoff=max_backoff)
    cap = max(interval, max_backoff)
    if failures == 0:
        assert interval * (1 - jitter) - 1e-9 <= delay <= interval * (1 + jitter) + 1e-9
    else:
        base = min(cap, interval * 2.0**failures)
        assert base * (1 - jitter) - 1e-6 <= delay <= cap + 1e-6
    assert 0 <= first_delay(interval, rng, jitter=jitter) <= min(interval * jitter, 5) + 1e-9
