"""Failure isolation through the fault proxy: a failed catalog keeps the repositories, a failed
tags/list keeps the repository's tags (stale, with the error and its last good time), a failed
manifest keeps the tag; nothing good is lost, and the next good scan catches up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from indexer_support import ACCOUNT, digests, event_summary, make_account, scan

from harness import FaultProxy, ImagePusher, RegistryHandle, fault_rules
from regwatch.config.model import DockerRegistryAccount
from regwatch.store import DIGEST_CHANGED, TAG_ADDED, AsyncStore

ProxyFactory = Callable[..., FaultProxy]


@dataclass
class Proxied:
    """The session's anonymous registry behind a fault proxy, and the repository a test uses."""

    registry: RegistryHandle
    proxy: FaultProxy
    repo: str

    def account(self, *repositories: str, **fields: Any) -> DockerRegistryAccount:
        """An account on the proxy for `repositories` (default: the test's repository)."""
        return make_account(
            self.proxy.url, repositories=list(repositories or [self.repo]), **fields
        )


@pytest.fixture
def proxied(
    registry_anonymous: RegistryHandle, unique_name: str, fault_proxy_factory: ProxyFactory
) -> Proxied:
    return Proxied(registry_anonymous, fault_proxy_factory(registry_anonymous), f"{unique_name}app")


async def private_behind_proxy(
    registry_factory: Callable[..., RegistryHandle],
    fault_proxy_factory: ProxyFactory,
    *repositories: str,
) -> FaultProxy:
    """A private registry holding tag "1" of each repository, behind a fault proxy."""
    handle = registry_factory()
    async with ImagePusher(handle) as pusher:
        for repo in repositories:
            await pusher.push(repo, "1")
    return fault_proxy_factory(handle)


@pytest.fixture
async def two_repos(registry_anonymous: RegistryHandle, unique_name: str) -> tuple[str, str]:
    repos = (f"{unique_name}a", f"{unique_name}b")
    async with ImagePusher(registry_anonymous) as pusher:
        for repo in repos:
            await pusher.push(repo, "1.0")
            await pusher.push(repo, "2.0")
    return repos


async def test_a_failed_catalog_keeps_the_repositories_and_scans_them(
    registry_factory: Callable[..., RegistryHandle],
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    proxy = await private_behind_proxy(registry_factory, fault_proxy_factory, "x/one", "x/two")
    account = make_account(proxy.url, trackDigests=True)
    await scan(account, astore)
    before = {repo: digests(astore, repo) for repo in ("x/one", "x/two")}
    proxy.add(fault_rules.status(500, path=r"/_catalog$", times=None))

    run = await scan(account, astore)

    assert run.status == "partial"
    assert run.repositories_ok == 2
    assert run.account_error is not None
    assert "500" in run.account_error
    assert {repo: digests(astore, repo) for repo in before} == before
    status = astore.store.account_status(ACCOUNT)
    assert status is not None
    assert status.catalog_error is not None
    assert status.catalog_ok_at is not None  # the last good listing is remembered


async def test_an_unreachable_registry_fails_the_account_and_keeps_everything(
    registry_factory: Callable[..., RegistryHandle],
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    proxy = await private_behind_proxy(registry_factory, fault_proxy_factory, "x/one")
    account = make_account(proxy.url)
    await scan(account, astore)
    proxy.add(fault_rules.reset(path=r"/_catalog$", times=None))
    proxy.clear_requests()

    run = await scan(account, astore)

    assert run.failed
    assert run.repositories == 0
    assert proxy.count(path_regex=r"/tags/list$") == 0  # a dead registry is not hammered
    assert digests(astore, "x/one") == {"1": None}


async def test_a_failed_tags_list_keeps_that_repository_stale(
    proxied: Proxied, two_repos: tuple[str, str], astore: AsyncStore
) -> None:
    bad, good = two_repos
    proxy = proxied.proxy
    account = proxied.account(bad, good, trackDigests=True)
    await scan(account, astore)
    before = digests(astore, bad)
    last_good = astore.store.repository(ACCOUNT, bad)
    assert last_good is not None
    proxy.add(fault_rules.status(500, path=rf"^/v2/{bad}/tags/list$", times=None))

    run = await scan(account, astore)

    assert (run.status, run.repositories_ok, run.repositories_failed) == ("partial", 1, 1)
    assert "500" in run.errors[bad]
    assert digests(astore, bad) == before
    state = astore.store.repository(ACCOUNT, bad)
    assert state is not None
    assert state.stale
    assert state.last_ok_at == last_good.last_ok_at
    assert state.last_error is not None
    assert "500" in state.last_error
    assert state.tag_count == 2
    healthy = astore.store.repository(ACCOUNT, good)
    assert healthy is not None
    assert not healthy.stale


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (fault_rules.malformed_json(path=r"/tags/list$", times=None), "not valid JSON"),
        (fault_rules.reset(path=r"/tags/list$", times=None), "connection"),
        # the first page arrives and is staged, then its next-page link is refused
        (fault_rules.link_foreign(path=r"/tags/list$", times=None), "another host"),
        (fault_rules.status(429, retry_after="0", path=r"/tags/list$", times=None), "rate limit"),
    ],
    ids=["malformed-json", "reset", "foreign-next-page", "429"],
)
async def test_a_broken_listing_changes_nothing(
    proxied: Proxied, astore: AsyncStore, rule: fault_rules.Rule, expected: str
) -> None:
    repo, proxy = proxied.repo, proxied.proxy
    account = proxied.account(trackDigests=True)
    async with ImagePusher(proxied.registry) as pusher:
        old = await pusher.push(repo, "old")
        await pusher.push(repo, "keep")
        await scan(account, astore)
        before = digests(astore, repo)
        await pusher.delete(repo, old.digest)  # the next listing would remove "old"…
        await pusher.push(repo, "new")  # …and add "new", were it complete
    proxy.add(rule)

    run = await scan(account, astore)

    assert run.failed
    assert expected in run.errors[repo]
    assert digests(astore, repo) == before
    assert event_summary(astore) == []


async def test_a_single_429_is_waited_out(
    proxied: Proxied, two_repos: tuple[str, str], astore: AsyncStore
) -> None:
    proxied.proxy.add(fault_rules.status(429, retry_after="0", path=r"/tags/list$", times=1))
    account = proxied.account(*two_repos)

    run = await scan(account, astore)

    assert run.status == "ok"
    assert (run.rate_limited, run.retries) == (1, 1)
    assert run.tags == 4


async def test_failed_manifests_keep_tags_and_are_retried_next_scan(
    proxied: Proxied, astore: AsyncStore
) -> None:
    repo, proxy = proxied.repo, proxied.proxy
    account = proxied.account(trackDigests=True)
    async with ImagePusher(proxied.registry) as pusher:
        first = await pusher.push(repo, "moving")
        await scan(account, astore)
        moved = await pusher.push(repo, "moving")
        new = await pusher.push(repo, "new")
    proxy.add(fault_rules.status(500, method="HEAD", path=r"/manifests/", times=None))

    broken = await scan(account, astore)

    assert (broken.status, broken.repositories_ok, broken.tag_errors) == ("partial", 1, 2)
    assert digests(astore, repo) == {"moving": first.digest, "new": None}
    assert event_summary(astore) == [(TAG_ADDED, "new", None, None)]  # announced once, now
    proxy.clear()

    healed = await scan(account, astore)

    assert healed.status == "ok"
    assert digests(astore, repo) == {"moving": moved.digest, "new": new.digest}
    assert event_summary(astore)[1:] == [(DIGEST_CHANGED, "moving", moved.digest, first.digest)]


async def test_a_failed_config_blob_leaves_labels_to_the_next_scan(
    proxied: Proxied, astore: AsyncStore
) -> None:
    repo, proxy = proxied.repo, proxied.proxy
    async with ImagePusher(proxied.registry) as pusher:
        await pusher.push(repo, "1", labels={"commitId": "abc"})
    proxy.add(fault_rules.truncate(path=r"/blobs/", times=None))
    account = proxied.account(inspectDigests=True)

    broken = await scan(account, astore)

    assert broken.tag_errors == 1
    image = astore.store.get_image(ACCOUNT, repo, "1")
    assert image is not None
    assert image.labels == {}
    proxy.clear()

    await scan(account, astore)

    image = astore.store.get_image(ACCOUNT, repo, "1")
    assert image is not None
    assert image.labels == {"commitId": "abc"}
