"""The service's shared passes and scan requests on one instance, on SQLite and (with
REGWATCH_TEST_STORE=postgres) PostgreSQL, against the real registry: a large account is scanned
as jobs by the instance's job worker, the run closes with the jobs' sums, a new tag is recorded
once, "scan now" is kept in the store and consumed; the sharing setting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from harness import FaultProxy, RegistryHandle, fault_rules, push_images
from regwatch.errors import ConfigError
from regwatch.service import Service
from regwatch.service.core import SCAN_LEASE_ENV, SHARE_ENV
from regwatch.store import ScanRun, Store
from regwatch.store.schema import scan_runs

INSTANCE = "serve:test:1"


def write_config(path: Path, accounts: list[dict[str, object]]) -> Path:
    document = {
        "currentDeployment": "default",
        "deploymentConfigurations": [
            {"name": "default", "providers": {"dockerRegistry": {"enabled": True,
                                                                 "accounts": accounts}}}
        ],
    }  # fmt: skip
    path.write_text(json.dumps(document))
    return path


def sharing_service(config: Path, store_url: str, home: Path, **options: Any) -> Service:
    """The service on `config` as INSTANCE, sharing passes above 2 repositories, leases of 5 s."""
    environ = {"REGWATCH_STORE_URL": store_url, SHARE_ENV: "2", SCAN_LEASE_ENV: "5",
               "HOME": str(home)}  # fmt: skip
    return Service.open(config, environ=environ, instance_id=INSTANCE, **options)


async def last_run(service: Service, account: str) -> ScanRun | None:
    status = await service.store.call(Store.account_status, account)
    return status.last_run if status is not None else None


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("0", 0), ("off", None)])
def test_the_sharing_setting(
    value: str, expected: int | None, store_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config", [])
    environ = {"REGWATCH_STORE_URL": store_url, SHARE_ENV: value, "HOME": str(tmp_path)}
    service = Service.open(config, environ=environ)
    try:
        assert service.share_above == expected
    finally:
        service.store.store.close()


def test_sharing_is_on_by_default_on_postgresql_only(store_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", [])
    service = Service.open(config, environ={"REGWATCH_STORE_URL": store_url, "HOME": str(tmp_path)})
    try:
        assert service.share_above == (None if store_url.startswith("sqlite") else 100)
    finally:
        service.store.store.close()


@pytest.mark.parametrize("value", ["many", "-1", "2.5"])
def test_a_bad_sharing_setting_is_refused(value: str, store_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", [])
    environ = {"REGWATCH_STORE_URL": store_url, SHARE_ENV: value, "HOME": str(tmp_path)}
    with pytest.raises(ConfigError, match=SHARE_ENV):
        Service.open(config, environ=environ)


async def test_a_large_account_is_scanned_as_jobs_and_scan_now_is_kept_in_the_store(
    registry_anonymous: RegistryHandle, unique_name: str, store_url: str, tmp_path: Path
) -> None:
    repositories = [f"{unique_name}job{i}" for i in range(5)]
    for repository in repositories:
        push_images(registry_anonymous, repository, ["1.0"])
    account = {"name": "big", "address": registry_anonymous.url, "repositories": repositories,
               "cacheIntervalSeconds": 86_400}  # fmt: skip
    config = write_config(tmp_path / "config", [account])
    service = sharing_service(config, store_url, tmp_path)
    store = service.store
    await service.start()
    try:

        async def runs_finished(count: int) -> bool:
            run = await last_run(service, "big")
            return run is not None and run.id >= count and run.finished_at is not None

        answer = await service.queue_scan("big")
        assert (answer["queued"], answer["holder"], answer["instance"]) == (False, None, INSTANCE)
        await eventually(lambda: runs_finished(1))
        status = await store.call(Store.account_status, "big")
        assert status is not None
        assert status.last_run is not None
        first = status.last_run
        assert (first.status, first.repositories_ok, first.holder) == ("ok", 5, INSTANCE)
        assert first.requests >= len(repositories)  # a tags/list per repository, at least
        summary = await store.call(Store.scan_pass, first.id)
        assert summary is not None
        assert (summary.jobs, summary.done, dict(summary.by_instance)) == (5, 5, {INSTANCE: 5})
        assert await store.call(Store.scan_requests) == {}  # consumed by the scan

        push_images(registry_anonymous, repositories[0], ["2.0"])
        answer = await service.queue_scan("big")
        assert (answer["queued"], answer["holder"]) == (False, INSTANCE)
        await eventually(lambda: runs_finished(first.id + 1))
        events = await store.call(Store.events, account="big")
        assert [(e.kind, e.repository, e.tag) for e in events] == [
            ("tag_added", repositories[0], "2.0")
        ]
        scans = await store.call(Store.repository_scans, "big")
        assert {(s.repository, s.instance, s.shared) for s in scans} == {
            (name, INSTANCE, True) for name in repositories
        }
        assert all(s.run_id == first.id + 1 for s in scans)
    finally:
        await service.stop()


def run_ids(service: Service, account: str) -> list[int]:
    """The account's run records, oldest first (a read of the store's table)."""
    with service.store.store.engines.reader.connect() as conn:
        query = select(scan_runs.c.id).where(scan_runs.c.account == account)
        return sorted(conn.execute(query).scalars())


async def test_a_catalog_accounts_first_pass_is_shared_when_its_listing_is_large(
    registry_factory: Callable[..., RegistryHandle],
    fault_proxy_factory: Callable[..., FaultProxy],
    store_url: str,
    tmp_path: Path,
) -> None:
    """Nothing stored yet: the decision is made on the pass's own listing (one catalog request
    per account): "big" (4 > 2) is published as jobs, "small" (2) is scanned whole; one run
    record per pass, every repository scanned once."""
    registry = registry_factory("anonymous")
    for name in ["big/a", "big/b", "big/c", "big/d", "small/a", "small/b"]:
        push_images(registry, name, ["1.0"])
    proxies = {name: fault_proxy_factory(registry) for name in ("big", "small")}
    accounts = [
        {"name": name, "address": proxy.url, "repositoriesRegex": f"{name}/.*",
         "cacheIntervalSeconds": 86_400}
        for name, proxy in proxies.items()
    ]  # fmt: skip
    config = write_config(tmp_path / "config", accounts)
    service = sharing_service(config, store_url, tmp_path)
    store = service.store
    await service.start()
    try:

        async def finished(name: str) -> bool:
            run = await last_run(service, name)
            return run is not None and run.finished_at is not None

        await eventually(lambda: finished("big"))
        await eventually(lambda: finished("small"))
        for name, proxy in proxies.items():
            assert proxy.count("GET", r"^/v2/_catalog") == 1, name
            assert proxy.count("GET", r"/tags/list") == (4 if name == "big" else 2), name
        big = await store.call(Store.account_status, "big")
        assert big is not None
        assert big.last_run is not None
        assert (big.last_run.status, big.last_run.repositories_ok) == ("ok", 4)
        assert run_ids(service, "big") == [big.last_run.id]
        summary = await store.call(Store.scan_pass, big.last_run.id)
        assert summary is not None
        assert (summary.jobs, summary.done, dict(summary.by_instance)) == (4, 4, {INSTANCE: 4})
        assert big.last_run.requests == len(proxies["big"].requests)  # listing + the jobs'
        small = await store.call(Store.account_status, "small")
        assert small is not None
        assert small.last_run is not None
        assert (small.last_run.status, small.last_run.repositories_ok) == ("ok", 2)
        assert run_ids(service, "small") == [small.last_run.id]
        assert small.last_run.requests == len(proxies["small"].requests)
        small_pass = await store.call(Store.scan_pass, small.last_run.id)
        assert small_pass is not None
        assert small_pass.jobs == 0
        scans = await store.call(Store.repository_scans, "small")
        assert {(s.repository, s.instance, s.shared) for s in scans} == {
            ("small/a", INSTANCE, False),
            ("small/b", INSTANCE, False),
        }
    finally:
        await service.stop()


async def test_an_account_deleted_mid_pass_stops_being_scanned_and_leaves_no_pass_open(
    registry_factory: Callable[..., RegistryHandle],
    fault_proxy_factory: Callable[..., FaultProxy],
    store_url: str,
    tmp_path: Path,
) -> None:
    """A config edit deletes a large account while its pass is half done: the jobs claimed in
    advance (up to 3 slotfuls) are not started, nothing more is claimed, the pass and its jobs
    are gone, and the service keeps scanning its other accounts."""
    registry = registry_factory("anonymous")
    names = [f"big/r{i:02d}" for i in range(12)]
    for name in [*names, "small/a"]:
        push_images(registry, name, ["1.0"])
    proxy = fault_proxy_factory(registry).add(
        fault_rules.slow_headers(0.5, path=r"^/v2/big/.*/tags/list", times=None)
    )
    big = {"name": "big", "address": proxy.url, "repositories": names, "cacheThreads": 1,
           "cacheIntervalSeconds": 86_400}  # fmt: skip
    small = {"name": "small", "address": registry.url, "repositories": ["small/a"],
             "cacheIntervalSeconds": 1}  # fmt: skip
    config = write_config(tmp_path / "config", [big, small])
    service = sharing_service(config, store_url, tmp_path, poll_interval=0.1)
    store = service.store
    await service.start()
    try:

        async def half_done() -> bool:
            run = await last_run(service, "big")
            summary = await store.call(Store.scan_pass, run.id) if run is not None else None
            return summary is not None and summary.done >= 1 and summary.pending >= 1

        await eventually(half_done)
        run_id = (await store.call(Store.unfinished_scan_pass, "big")) or 0
        assert run_id > 0
        write_config(tmp_path / "config", [small])

        async def deleted() -> bool:
            return await store.call(Store.account_status, "big") is None

        await eventually(deleted)
        await asyncio.sleep(1.0)  # the repositories in progress at the deletion end
        listed = proxy.count("GET", r"/tags/list")
        await asyncio.sleep(1.5)
        assert proxy.count("GET", r"/tags/list") == listed  # nothing more of it is scanned
        assert listed < len(names)
        # only the repositories in progress (2 slots) ended after it, not those claimed ahead
        assert service.jobs.lost <= 2, service.jobs.lost
        assert await store.call(Store.scan_pass, run_id) is None
        assert await store.call(Store.claimable_scan_accounts, ["big", "small"]) == []
        assert run_ids(service, "big") == []
        before = run_ids(service, "small")
        await eventually(lambda: _more_runs(service, "small", before))
    finally:
        await service.stop()


async def _more_runs(service: Service, account: str, before: list[int]) -> bool:
    return len(run_ids(service, account)) > len(before)
