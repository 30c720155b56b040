"""Several `regwatch serve` processes on one PostgreSQL, scanning the real registry (issue 7).

Three instances (own ports, the same config file, the same database) behind a fault proxy that
counts the registry requests: each account is scanned once per interval across the three, not
once per instance; an instance killed with SIGKILL mid-scan has its account scanned by another
within one lease; an instance started later takes a share; a new tag reaches a webhook receiver
exactly once. Intervals of 2 s and leases of 3 s keep it fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from triggers_support import ServeFactory, clean_env, eventually, write_config

from harness import FaultProxy, RegistryHandle, fault_rules, push_images
from harness.postgres import PostgresServer
from harness.webhook_receiver import WebhookReceiver
from regwatch.store import upgrade

INTERVAL = 2
LEASE = 3.0
FAST = {"retryBaseSeconds": 0.2, "retryMaxSeconds": 0.5, "timeoutSeconds": 3, "leaseSeconds": 4}


@pytest.fixture
def database(postgres_server: PostgresServer) -> Iterator[tuple[PostgresServer, str]]:
    name = postgres_server.create_database()
    upgrade(postgres_server.url(name))
    try:
        yield postgres_server, name
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def serve(tmp_path: Path, database: tuple[PostgresServer, str]) -> Iterator[ServeFactory]:
    server, name = database
    env = clean_env(tmp_path)
    env.update(REGWATCH_STORE_URL=server.url(name), REGWATCH_SCAN_LEASE_SECONDS=str(LEASE))
    factory = ServeFactory(env, tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture
def proxy(registry_anonymous: RegistryHandle) -> Iterator[FaultProxy]:
    with FaultProxy.for_registry(registry_anonymous) as started:
        yield started


def accounts_config(
    path: Path, proxy: FaultProxy, repositories: list[str], regwatch: dict[str, Any] | None = None
) -> list[str]:
    """One account per repository (acc0, acc1, …), all scanned every INTERVAL seconds."""
    names = [f"acc{i}" for i in range(len(repositories))]
    accounts = [
        {"name": name, "address": proxy.url, "repositories": [repository],
         "cacheIntervalSeconds": INTERVAL}
        for name, repository in zip(names, repositories, strict=True)
    ]  # fmt: skip
    write_config(path, accounts, regwatch or {})
    return names


def runs(database: tuple[PostgresServer, str]) -> list[tuple[str, str, str, float]]:
    """Every scan run in the store: (account, holder, status, started_at in epoch seconds)."""
    server, name = database
    with server.connect(name) as conn:
        rows = conn.execute(
            "SELECT account, holder, status, started_at FROM scan_runs ORDER BY id"
        ).fetchall()
    return [
        (account, holder, status, started / 1000.0) for account, holder, status, started in rows
    ]


def holder_of(process_pid: int, holders: set[str]) -> bool:
    return any(holder.endswith(f":{process_pid}") for holder in holders)


def tags_list_counts(proxy: FaultProxy, repositories: list[str]) -> list[int]:
    return [proxy.count("GET", f"^/v2/{repository}/tags/list$") for repository in repositories]


def test_three_instances_scan_each_account_once_per_interval_and_deliver_events_once(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    proxy: FaultProxy,
    serve: ServeFactory,
    database: tuple[PostgresServer, str],
) -> None:
    repositories = [f"{unique_name}app{i}" for i in range(4)]
    for repository in repositories:
        push_images(registry_anonymous, repository, ["1.0"])
    receiver = WebhookReceiver().start()
    try:
        config = tmp_path / "config"
        hooks = {
            "webhooks": [{"name": "ci", "url": receiver.url}],
            "triggers": [{"name": "any", "account": "acc0", "repository": repositories[0],
                          "sink": "ci"}],
            "delivery": FAST,
        }  # fmt: skip
        names = accounts_config(config, proxy, repositories, hooks)
        instances = [serve(config) for _ in range(3)]
        for name in names:
            instances[0].wait_scanned(name)

        proxy.clear_requests()
        window = 4 * INTERVAL + 0.5
        time.sleep(window)
        counts = tags_list_counts(proxy, repositories)
        # each instance alone would list each repository ~4 times in the window: ~12 for three
        assert all(2 <= count <= 5 for count in counts), counts
        holders = {holder for _, holder, _, _ in runs(database)}
        assert len(holders) >= 2, holders  # the work is shared, no instance is special

        push_images(registry_anonymous, repositories[0], ["2.0", "2.1"])
        receiver.wait_for(2, timeout=20)
        time.sleep(3 * INTERVAL)  # every instance's outbox worker had its chance to send again
        tags = sorted(request.json()["content"]["tag"] for request in receiver.requests)
        assert tags == ["2.0", "2.1"]
    finally:
        receiver.stop()


def test_an_instance_killed_mid_scan_loses_its_account_within_one_lease(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    proxy: FaultProxy,
    serve: ServeFactory,
    database: tuple[PostgresServer, str],
) -> None:
    repositories = [f"{unique_name}slow", f"{unique_name}fast"]
    for repository in repositories:
        push_images(registry_anonymous, repository, ["1.0"])
    # listing the slow repository takes longer than a lease: the heartbeat must keep it; 2.5
    # leases so that the scan is still running after the test's LEASE of waiting, even when the
    # scan was seen late on a loaded machine
    proxy.add(fault_rules.slow_headers(2.5 * LEASE, path=f"{repositories[0]}/tags/list",
                                       times=None))  # fmt: skip
    config = tmp_path / "config"
    accounts_config(config, proxy, repositories)
    instances = {running.process.pid: running for running in (serve(config), serve(config))}

    def scanning_slow() -> list[tuple[str, str, str, float]]:
        return [run for run in runs(database) if run[0] == "acc0" and run[2] == "running"]

    eventually(lambda: bool(scanning_slow()), 20, "a scan of the slow account")
    time.sleep(LEASE)  # mid-scan, after at least one heartbeat
    (_, victim_holder, _, _) = scanning_slow()[-1]
    victim = next(pid for pid in instances if victim_holder.endswith(f":{pid}"))
    assert len(scanning_slow()) == 1  # the heartbeat kept the lease: nobody else scans it
    instances.pop(victim).kill()
    killed_at = time.time()

    def taken_over() -> bool:
        return any(
            account == "acc0" and holder != victim_holder and started > killed_at - 1
            for account, holder, _, started in runs(database)
        )

    eventually(taken_over, 2 * LEASE, "another instance scans the slow account")
    took = min(
        started
        for account, holder, _, started in runs(database)
        if account == "acc0" and holder != victim_holder and started > killed_at - 1
    )
    assert took - killed_at <= LEASE + 1.0
    (survivor,) = instances.values()
    status = survivor.get("/dockerRegistry/accounts/acc0/status")
    assert status["lastRun"]["instance"] != victim_holder
    abandoned = [run for run in runs(database) if run[1] == victim_holder and run[2] == "running"]
    assert abandoned == []  # the victim's run was closed as failed when its lease was taken


def test_an_instance_added_later_takes_a_share(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    proxy: FaultProxy,
    serve: ServeFactory,
    database: tuple[PostgresServer, str],
) -> None:
    repositories = [f"{unique_name}app{i}" for i in range(4)]
    for repository in repositories:
        push_images(registry_anonymous, repository, ["1.0"])
    config = tmp_path / "config"
    names = accounts_config(config, proxy, repositories)
    first = [serve(config), serve(config)]
    for name in names:
        first[0].wait_scanned(name)
    later = serve(config)
    joined = time.time()

    def later_scanned() -> bool:
        holders = {holder for _, holder, _, started in runs(database) if started >= joined}
        return holder_of(later.process.pid, holders)

    eventually(later_scanned, 10 * INTERVAL, "the later instance scans an account")

    def holder_shown() -> bool:  # the holder as last looked at: none while a lease changes hands
        return later.get(f"/dockerRegistry/accounts/{names[0]}/status")["leaseHolder"] is not None

    eventually(holder_shown, 2 * INTERVAL, "the status names the lease holder")
    proxy.clear_requests()
    time.sleep(2 * INTERVAL + 0.5)
    assert all(count <= 3 for count in tags_list_counts(proxy, repositories))
