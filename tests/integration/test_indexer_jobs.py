"""scan_account / scan_accounts as the scheduler uses them: progress callbacks, graceful stop at
repository boundaries, cancellation, several accounts, a reused client, setup failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from indexer_support import ACCOUNT, fast_transport, make_account, repository_names, scan
from store_support import assert_search_index_exact

from harness import FaultProxy, ImagePusher, RegistryHandle, fault_rules
from regwatch.config.model import DockerRegistryAccount
from regwatch.indexer import RepositoryResult, ScanProgress, ScanRun, scan_account, scan_accounts
from regwatch.registry import RegistryClient
from regwatch.store import AsyncStore, Store, open_store

ProxyFactory = Callable[..., FaultProxy]


@pytest.fixture
def proxy(registry_anonymous: RegistryHandle, fault_proxy_factory: ProxyFactory) -> FaultProxy:
    """A fault proxy in front of the session's anonymous registry."""
    return fault_proxy_factory(registry_anonymous)


def slow_tags_list(proxy: FaultProxy, seconds: float) -> None:
    """Every tags/list answer from now on waits `seconds` before its headers."""
    proxy.add(fault_rules.slow_headers(seconds, path=r"/tags/list$", times=None))


@pytest.fixture
async def six_repos(registry_anonymous: RegistryHandle, unique_name: str) -> list[str]:
    repos = [f"{unique_name}r{i}" for i in range(6)]
    async with ImagePusher(registry_anonymous) as pusher:
        for repo in repos:
            await pusher.push(repo, "1", salt=f"{unique_name}six")
            await pusher.push(repo, "2", salt=f"{unique_name}six2")
    return repos


class Recorder(ScanProgress):
    def __init__(self, stop_after: int | None = None, stop: asyncio.Event | None = None) -> None:
        self.started: list[tuple[str, int]] = []
        self.done: list[RepositoryResult] = []
        self.pages = 0
        self.finished: list[ScanRun] = []
        self.stop_after = stop_after
        self.stop = stop

    def account_started(self, account: str, repositories: int) -> None:
        self.started.append((account, repositories))

    def page_done(self, account: str, repository: str, tags: int, requests: int) -> None:
        self.pages += 1

    def repository_done(self, account: str, result: RepositoryResult, requests: int) -> None:
        self.done.append(result)
        if self.stop is not None and len(self.done) == self.stop_after:
            self.stop.set()

    def account_finished(self, run: ScanRun) -> None:
        self.finished.append(run)


async def test_progress_reports_every_repository_and_the_run(
    registry_anonymous: RegistryHandle, six_repos: list[str], astore: AsyncStore
) -> None:
    progress = Recorder()
    account = make_account(registry_anonymous.url, repositories=six_repos, cacheThreads=3)

    async with fast_transport() as transport:
        run = await scan_account(account, store=astore, transport=transport, progress=progress)

    assert progress.started == [(ACCOUNT, 6)]
    assert sorted(r.repository for r in progress.done) == sorted(six_repos)
    assert all(r.ok and r.tags == 2 for r in progress.done)
    assert progress.pages == 6
    assert progress.finished == [run]


class CountingStore(AsyncStore):
    """An AsyncStore that counts the Store methods called through it, by name."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calls: Counter[str] = Counter()

    async def call(self, method: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.calls[method.__name__] += 1
        return await super().call(method, *args, **kwargs)


async def test_a_scan_claims_its_repositories_two_batches_of_workers_at_a_time(
    registry_anonymous: RegistryHandle, six_repos: list[str], store_url: str
) -> None:
    counting = CountingStore(open_store(store_url))
    account = make_account(registry_anonymous.url, repositories=six_repos, cacheThreads=1)
    try:
        run = await scan(account, counting)  # 2 workers: 4 claims per call
        assert_search_index_exact(counting.store)
    finally:
        await counting.aclose()

    assert (run.status, run.repositories_ok, run.tags) == ("ok", 6, 12)
    assert counting.calls["begin_repository_scans"] == 2
    assert counting.calls["begin_repository_scan"] == 0
    assert counting.calls["finish_repository_scan"] == 6


async def test_stop_finishes_the_repositories_in_progress_and_records_the_run(
    proxy: FaultProxy, six_repos: list[str], astore: AsyncStore
) -> None:
    slow_tags_list(proxy, 0.1)
    stop = asyncio.Event()
    progress = Recorder(stop_after=1, stop=stop)
    account = make_account(proxy.url, repositories=six_repos, cacheThreads=1)

    async with fast_transport() as transport:
        run = await scan_account(
            account, store=astore, transport=transport, progress=progress, stop=stop
        )

    assert run.stopped
    assert run.status == "partial"
    # one worker more than cacheThreads was already inside a repository: it finished it
    assert 1 <= run.repositories_ok <= 2
    assert run.repositories_failed == 0
    states = {r.name: r for r in astore.store.repositories(ACCOUNT)}
    assert sum(1 for r in states.values() if r.status == "ok") == run.repositories_ok
    assert all(r.status in ("ok", "new") for r in states.values())
    status = astore.store.account_status(ACCOUNT)
    assert status is not None
    assert status.last_run is not None
    assert status.last_run.status == "partial"
    assert "stopped" in str(status.last_run.errors)

    resumed = await scan(account, astore)
    assert (resumed.status, resumed.repositories_ok, resumed.tags) == ("ok", 6, 12)


async def test_cancelling_a_scan_keeps_the_index_consistent_and_closes_the_run(
    proxy: FaultProxy, six_repos: list[str], astore: AsyncStore
) -> None:
    slow_tags_list(proxy, 0.2)
    account = make_account(proxy.url, repositories=six_repos, cacheThreads=2)

    async with fast_transport() as transport:
        task = asyncio.create_task(scan_account(account, store=astore, transport=transport))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    status = astore.store.account_status(ACCOUNT)
    assert status is not None
    assert status.last_run is not None
    closed = status.last_run
    assert closed.finished_at is not None
    assert closed.errors[0] == {"repository": None, "error": "cancelled"}
    assert closed.status == ("partial" if closed.repositories_ok else "failed")
    for repository in astore.store.repositories(ACCOUNT):
        assert repository.tag_count == len(astore.store.known_tags(ACCOUNT, repository.name))
    proxy.clear()
    again = await scan(account, astore)
    assert (again.status, again.tags) == ("ok", 12)


async def test_scan_accounts_runs_each_account_and_keeps_their_order(
    registry_anonymous: RegistryHandle, six_repos: list[str], astore: AsyncStore
) -> None:
    accounts = [
        DockerRegistryAccount.model_validate(
            {"name": f"acct-{i}", "address": registry_anonymous.url, "repositories": [repo]}
        )
        for i, repo in enumerate(six_repos[:4])
    ]
    accounts.append(
        DockerRegistryAccount.model_validate(
            {"name": "broken", "address": registry_anonymous.url, "repositories": ["no/such"]}
        )
    )

    async with fast_transport() as transport:
        runs = await scan_accounts(accounts, store=astore, transport=transport, concurrency=2)

    assert [r.account for r in runs] == [a.name for a in accounts]
    assert [r.status for r in runs] == ["ok"] * 4 + ["failed"]
    assert astore.store.counts().tags_by_account == {
        "acct-0": 2, "acct-1": 2, "acct-2": 2, "acct-3": 2, "broken": 0,
    }  # fmt: skip


async def test_a_reused_client_skips_the_api_probe_and_counts_only_its_own_requests(
    proxy: FaultProxy, six_repos: list[str], astore: AsyncStore
) -> None:
    account = make_account(proxy.url, repositories=six_repos[:2])
    async with fast_transport() as transport:
        client = RegistryClient(account.endpoint(), account.credentials(), transport=transport)
        first = await scan_account(account, store=astore, transport=transport, client=client)
        second = await scan_account(account, store=astore, transport=transport, client=client)

    assert first.requests == 3  # probe + 2 tags/list
    assert second.requests == 2
    assert proxy.count("GET", r"^/v2/$") == 1


async def test_a_setup_failure_is_a_failed_run_not_an_exception(
    registry_anonymous: RegistryHandle, astore: AsyncStore, tmp_path: object
) -> None:
    account = make_account(
        registry_anonymous.url.replace("http://", "https://"),
        repositories=["a/b"],
        caCert="/nonexistent/ca.pem",
    )

    run = await scan(account, astore)

    assert run.failed
    assert run.account_error is not None
    assert "CA bundle" in run.account_error
    assert repository_names(astore) == []
