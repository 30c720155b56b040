"""Choosing the repositories: the catalog (paged) filtered by repositoriesRegex (full match) and
skip, a catalogFile, an explicit list; a successful listing is authoritative."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from indexer_support import ACCOUNT, make_account, repository_names, scan

from harness import FaultProxy, RegistryHandle, RegistryProcess, push_images
from regwatch.store import AsyncStore

REPOS = ["team-a/api", "team-a/web", "team-a/web-old", "team-b/api", "tools/ci"]


@pytest.fixture(scope="module")
def catalog_registry() -> Iterator[RegistryHandle]:
    """A private registry: the catalog of the shared ones holds every other test's repositories."""
    with RegistryProcess("anonymous") as handle:
        for repo in REPOS:
            push_images(handle, repo, ["1.0", "2.0"], salt="catalog")
        yield handle


async def test_the_whole_catalog_is_read_page_by_page(
    catalog_registry: RegistryHandle,
    astore: AsyncStore,
    fault_proxy_factory: Callable[..., FaultProxy],
) -> None:
    proxy = fault_proxy_factory(catalog_registry)
    account = make_account(proxy.url, paginateSize=2)

    run = await scan(account, astore)

    assert repository_names(astore) == sorted(REPOS)
    assert proxy.count("GET", r"/_catalog$") == 3  # 5 names in pages of 2
    assert (run.status, run.repositories, run.tags) == ("ok", 5, 10)


async def test_regex_is_a_full_match_and_skip_drops_names(
    catalog_registry: RegistryHandle, astore: AsyncStore
) -> None:
    account = make_account(
        catalog_registry.url, repositoriesRegex="team-a/web|team-.*/api", skip=["team-b/api"]
    )

    run = await scan(account, astore)

    # "team-a/web-old" contains a match of "team-a/web" but is not one
    assert repository_names(astore) == ["team-a/api", "team-a/web"]
    assert run.repositories_ok == 2


async def test_repositories_that_leave_the_listing_lose_their_tags(
    catalog_registry: RegistryHandle, astore: AsyncStore
) -> None:
    await scan(make_account(catalog_registry.url, repositoriesRegex="team-a/.*"), astore)
    assert len(repository_names(astore)) == 3

    await scan(make_account(catalog_registry.url, repositoriesRegex="team-a/api"), astore)

    assert repository_names(astore) == ["team-a/api"]
    assert astore.store.find_images(account=ACCOUNT, repository="team-a/web") == []
    assert astore.store.counts().tags == 2


async def test_catalog_file_replaces_the_catalog(
    catalog_registry: RegistryHandle,
    astore: AsyncStore,
    tmp_path: Path,
    fault_proxy_factory: Callable[..., FaultProxy],
) -> None:
    listing = tmp_path / "catalog.json"
    listing.write_text(json.dumps({"repositories": ["tools/ci", "team-b/api", "gone/repo"]}))
    proxy = fault_proxy_factory(catalog_registry)
    account = make_account(proxy.url, catalogFile=str(listing), skip=["team-b/api"])

    run = await scan(account, astore)

    assert proxy.count(path_regex=r"/_catalog$") == 0
    assert repository_names(astore) == ["gone/repo", "tools/ci"]
    assert (run.status, run.repositories_ok, run.repositories_failed) == ("partial", 1, 1)
    assert "gone/repo" in run.errors
    assert "not found" in run.errors["gone/repo"]


async def test_an_unreadable_catalog_file_keeps_the_stored_repositories(
    catalog_registry: RegistryHandle, astore: AsyncStore, tmp_path: Path
) -> None:
    listing = tmp_path / "catalog.json"
    listing.write_text(json.dumps({"repositories": ["tools/ci"]}))
    account = make_account(catalog_registry.url, catalogFile=str(listing))
    await scan(account, astore)
    listing.write_text("{not json")

    run = await scan(account, astore)

    assert repository_names(astore) == ["tools/ci"]
    assert run.status == "partial"
    assert run.account_error is not None
    assert "not valid JSON" in run.account_error
    assert astore.store.counts().tags == 2


async def test_an_explicit_list_is_used_as_given(
    catalog_registry: RegistryHandle,
    astore: AsyncStore,
    fault_proxy_factory: Callable[..., FaultProxy],
) -> None:
    proxy = fault_proxy_factory(catalog_registry)
    account = make_account(proxy.url, repositories=["tools/ci", "team-a/api"], skip=["tools/ci"])

    await scan(account, astore)

    assert proxy.count(path_regex=r"/_catalog$") == 0
    assert repository_names(astore) == ["team-a/api"]
