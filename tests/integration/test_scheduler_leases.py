"""Scan leases (regwatch.indexer.leases) shared by several schedulers on one store, in real time.

Each "instance" here is a Scheduler with its own Store connection and holder id on the same store
URL (SQLite, or PostgreSQL with REGWATCH_TEST_STORE=postgres); the scans are recorded, not run.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from regwatch.config.model import DockerRegistryAccount
from regwatch.errors import ConfigError
from regwatch.indexer.leases import ScanLeases, lease_name
from regwatch.indexer.scheduler import Scheduler
from regwatch.service.core import SCAN_LEASE_ENV, Service
from regwatch.store import AsyncStore, open_store


def account(name: str, interval: int) -> DockerRegistryAccount:
    return DockerRegistryAccount.model_validate(
        {"name": name, "address": "http://127.0.0.1:5000", "cacheIntervalSeconds": interval}
    )


@dataclass
class Scans:
    """Every scan of every instance: (account, holder, start, end) on the monotonic clock."""

    duration: float = 0.05
    done: list[tuple[str, str, float, float]] = field(default_factory=list)
    running: dict[str, str] = field(default_factory=dict)
    overlaps: list[str] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)

    def scan_for(self, holder: str) -> Callable[[DockerRegistryAccount, asyncio.Event], Any]:
        async def scan(acc: DockerRegistryAccount, stop: asyncio.Event) -> None:
            if acc.name in self.running:
                self.overlaps.append(f"{acc.name}: {holder} while {self.running[acc.name]}")
            self.running[acc.name] = holder
            start = time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), self.duration)
                self.stopped.append((acc.name, holder))
            except TimeoutError:
                pass
            finally:
                del self.running[acc.name]
            self.done.append((acc.name, holder, start, time.monotonic()))

        return scan

    def starts(self, name: str) -> list[float]:
        return [start for acc, _, start, _ in self.done if acc == name]

    def holders(self, name: str | None = None) -> set[str]:
        return {holder for acc, holder, _, _ in self.done if name in (None, acc)}


@dataclass
class Instance:
    holder: str
    store: AsyncStore
    scheduler: Scheduler
    leases: ScanLeases


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for `check()` (a scan started, a stop seen) rather than guess how long it takes."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def instances(store_url: str) -> AsyncIterator[Callable[..., Instance]]:
    started: list[Instance] = []

    def start(holder: str, scans: Scans, *, ttl: float = 2.0) -> Instance:
        store = AsyncStore(open_store(store_url))
        leases = ScanLeases(store, holder, ttl=ttl)
        scheduler = Scheduler(scans.scan_for(holder), leases=leases)
        started.append(Instance(holder, store, scheduler, leases))
        return started[-1]

    yield start
    for instance in started:
        await instance.scheduler.stop(timeout=5)
        await instance.store.aclose()


async def test_three_instances_scan_each_account_once_per_interval(
    instances: Callable[..., Instance],
) -> None:
    scans = Scans()
    accounts = [account("a", 1), account("b", 1)]
    for holder in ("serve:one", "serve:two", "serve:three"):
        await instances(holder, scans).scheduler.apply(accounts)
    await asyncio.sleep(4.6)
    assert scans.overlaps == []
    for name in ("a", "b"):
        starts = scans.starts(name)
        # alone, each instance would scan each account 4 to 5 times in 4.6 s: 12 to 15 in all
        assert 3 <= len(starts) <= 5, starts
        assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.85, starts
    assert len(scans.holders()) >= 2  # not one instance doing everything


async def test_an_instance_added_later_takes_a_share(instances: Callable[..., Instance]) -> None:
    scans = Scans()
    accounts = [account(f"acc{i}", 1) for i in range(4)]
    await instances("serve:first", scans).scheduler.apply(accounts)
    await asyncio.sleep(1.5)
    assert scans.holders() == {"serve:first"}
    await instances("serve:later", scans).scheduler.apply(accounts)
    await asyncio.sleep(3.5)
    later = [acc for acc, holder, _, _ in scans.done if holder == "serve:later"]
    assert later, scans.done
    assert scans.overlaps == []


async def test_a_lapsed_lease_of_a_dead_instance_is_taken_over(
    store_url: str, instances: Callable[..., Instance]
) -> None:
    scans = Scans()
    alive = instances("serve:alive", scans)
    store = open_store(store_url)
    try:
        assert store.acquire_lease(lease_name("a"), "serve:dead:1", timedelta(seconds=1.5))
        acquired = time.monotonic()
    finally:
        store.close()
    await alive.scheduler.apply([account("a", 5)])
    entry = alive.scheduler.accounts["a"]
    # the first look comes within the first delay (at most 0.5 s here): wait for it, not a guess
    while entry.lease_checked_at is None and time.monotonic() - acquired < 1.2:
        await asyncio.sleep(0.02)
    assert (scans.done, entry.lease_holder) == ([], "serve:dead:1")
    # looks again every 0.25-0.75 s: taken within that of the lapse (at 1.5 s), so by ~2.3 s;
    # 3 s leaves a loaded host its lease round trips and is still well before the 5 s interval
    await until(lambda: bool(scans.starts("a")), timeout=5.0)
    (start,) = scans.starts("a")
    assert 1.4 <= start - acquired <= 3.0
    assert entry.lease_holder == "serve:alive"
    assert await alive.leases.holder("a") == "serve:alive"  # kept until the next due time


async def test_the_heartbeat_keeps_a_long_scan_to_its_instance(
    instances: Callable[..., Instance],
) -> None:
    scans = Scans(duration=2.0)  # more than three leases of 0.6 s
    first = instances("serve:first", scans, ttl=0.6)
    await first.scheduler.apply([account("a", 5)])
    first.scheduler.request_scan("a")
    await until(lambda: scans.running == {"a": "serve:first"})
    second = instances("serve:second", scans, ttl=0.6)
    await second.scheduler.apply([account("a", 5)])
    second.scheduler.request_scan("a")  # then looks again every 0.25-0.75 s
    await asyncio.sleep(2.5)
    assert second.scheduler.accounts["a"].lease_holder == "serve:first"
    assert [(acc, holder) for acc, holder, _, _ in scans.done] == [("a", "serve:first")]
    assert (scans.overlaps, scans.stopped) == ([], [])


async def test_a_scan_whose_lease_was_taken_stops(
    store_url: str, instances: Callable[..., Instance]
) -> None:
    scans = Scans(duration=10.0)
    first = instances("serve:first", scans, ttl=0.6)
    await first.scheduler.apply([account("a", 30)])
    first.scheduler.request_scan("a")
    await until(lambda: scans.running == {"a": "serve:first"})
    thief = open_store(store_url)  # e.g. an instance that saw the lease lapse during a stall
    try:
        assert thief.release_lease(lease_name("a"), "serve:first")
        assert thief.acquire_lease(lease_name("a"), "serve:thief", timedelta(seconds=30))
    finally:
        thief.close()
    await until(lambda: bool(scans.stopped), timeout=3.0)  # the heartbeat sees the theft
    assert scans.stopped == [("a", "serve:first")]
    assert await first.leases.holder("a") == "serve:thief"


async def test_one_instance_alone_scans_on_its_interval(
    instances: Callable[..., Instance],
) -> None:
    scans = Scans()
    await instances("serve:only", scans).scheduler.apply([account("a", 1)])
    # wait for three scans rather than count them in a fixed window: a loaded host (CI, with
    # PostgreSQL) delays each lease round trip, and a fixed window then counts one scan short
    await until(lambda: len(scans.starts("a")) >= 3, timeout=8.0)
    starts = scans.starts("a")
    # due 0.9-1.1 s after a scan, plus up to 0.1 s (the lease retry period) and the 0.05 s scan:
    # never sooner than the interval, and never held back by its own lease (ttl 2 s)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.85 <= gap <= 1.8 for gap in gaps), gaps
    assert scans.holders() == {"serve:only"}


def write_empty_config(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "currentDeployment": "default",
                "deploymentConfigurations": [{"name": "default", "providers": {}}],
            }
        )
    )
    return path


@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_bad_scan_lease_setting_is_refused(value: str, store_url: str, tmp_path: Path) -> None:
    config = write_empty_config(tmp_path / "config")
    environ = {"REGWATCH_STORE_URL": store_url, SCAN_LEASE_ENV: value, "HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match=SCAN_LEASE_ENV):
        Service.open(config, environ=environ)


async def test_the_service_leases_scans_for_its_instance_id(store_url: str, tmp_path: Path) -> None:
    config = write_empty_config(tmp_path / "config")
    environ = {"REGWATCH_STORE_URL": store_url, SCAN_LEASE_ENV: "4.5", "HOME": str(tmp_path)}
    service = Service.open(config, environ=environ, instance_id="serve:test:1")
    try:
        assert (service.leases.ttl, service.leases.holder_id) == (4.5, "serve:test:1")
        assert await service.leases.take("a")
        assert await service.leases.holder("a") == "serve:test:1"
    finally:
        await service.store.aclose()
