"""The service's shared passes and scan requests on one instance, on SQLite and (with
REGWATCH_TEST_STORE=postgres) PostgreSQL, against the real registry: a large account is scanned
as jobs by the instance's job worker, the run closes with the jobs' sums, a new tag is recorded
once, "scan now" is kept in the store and consumed; the sharing setting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from harness import RegistryHandle, push_images
from regwatch.errors import ConfigError
from regwatch.service import Service
from regwatch.service.core import SCAN_LEASE_ENV, SHARE_ENV
from regwatch.store import Store

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
    environ = {"REGWATCH_STORE_URL": store_url, SHARE_ENV: "2", SCAN_LEASE_ENV: "5",
               "HOME": str(tmp_path)}  # fmt: skip
    service = Service.open(config, environ=environ, instance_id=INSTANCE)
    store = service.store
    await service.start()
    try:

        async def runs_finished(count: int) -> bool:
            status = await store.call(Store.account_status, "big")
            run = status.last_run if status is not None else None
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
