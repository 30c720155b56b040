"""The indexer against the real registry: initial scan, incremental rescans (request counts seen
by the fault proxy), multi-arch indexes, dates from annotations, the content-addressed cache."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from indexer_support import ACCOUNT, digests, make_account, scan

from harness import FaultProxy, ImagePusher, RegistryHandle, fault_rules
from regwatch.store import AsyncStore

T1 = dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 3, 2, 10, 0, tzinfo=dt.UTC)
ALL_FLAGS = {"trackDigests": True, "inspectDigests": True, "sortTagsByDate": True}

ProxyFactory = Callable[..., FaultProxy]


async def test_initial_scan_indexes_tags_digests_dates_and_labels(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    app, db = f"{unique_name}app", f"{unique_name}db"
    async with ImagePusher(registry_anonymous) as pusher:
        one = await pusher.push(app, "1.0.0", created=T1, labels={"commitId": "c1"})
        two = await pusher.push(app, "1.10.0", kind="oci", created=T2, labels={"branch": "main"})
        await pusher.tag(app, one.digest, "latest")
        await pusher.push(db, "9.6", created=T1)
    account = make_account(registry_anonymous.url, repositories=[app, db], **ALL_FLAGS)

    run = await scan(account, astore)

    assert (run.status, run.repositories_ok, run.repositories_failed) == ("ok", 2, 0)
    assert (run.tags, run.tags_added, run.events) == (4, 4, 0)  # a baseline fires nothing
    assert run.run_id is not None
    assert run.requests > 0
    store = astore.store
    assert store.tags(ACCOUNT, app, "semver") == ["1.0.0", "1.10.0", "latest"]
    assert store.tags(ACCOUNT, app, "date")[0] == "1.10.0"
    image = store.get_image(ACCOUNT, app, "1.10.0")
    assert image is not None
    assert (image.digest, image.created, image.labels) == (two.digest, T2, {"branch": "main"})
    assert image.registry == registry_anonymous.host
    assert digests(astore, app)["latest"] == one.digest
    status = store.account_status(ACCOUNT)
    assert status is not None
    assert status.last_finished_run is not None
    assert status.last_finished_run.status == "ok"
    assert status.last_finished_run.requests == run.requests


async def test_unchanged_rescan_costs_one_tags_list_per_page_and_nothing_else(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    repos = [f"{unique_name}a", f"{unique_name}b"]
    async with ImagePusher(registry_anonymous) as pusher:
        for repo in repos:
            for tag in ("t1", "t2", "t3", "t4", "t5"):
                await pusher.push(repo, tag, labels={"n": tag})
    proxy = fault_proxy_factory(registry_anonymous).add(fault_rules.paginate_tags(2))
    account = make_account(proxy.url, repositories=repos, paginateSize=2, inspectDigests=True)
    first = await scan(account, astore)
    assert first.tags == 10
    assert proxy.count("GET", r"/blobs/") == 10
    proxy.clear_requests()

    run = await scan(account, astore)

    assert proxy.count("GET", r"/tags/list$") == 2 * 3  # 5 tags in pages of 2, per repository
    assert proxy.count(path_regex=r"/manifests/|/blobs/") == 0
    assert len(proxy.requests) == 6 + 1  # + the API version probe of a new client
    assert run.requests == len(proxy.requests)
    assert (run.tags, run.tags_added, run.tags_changed, run.tags_removed) == (10, 0, 0, 0)


async def test_rescan_with_track_digests_heads_known_tags_and_never_gets_them(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    repo = f"{unique_name}app"
    async with ImagePusher(registry_anonymous) as pusher:
        for tag in ("1", "2", "3"):
            await pusher.push(repo, tag)
    proxy = fault_proxy_factory(registry_anonymous)
    account = make_account(proxy.url, repositories=[repo], trackDigests=True)
    await scan(account, astore)
    proxy.clear_requests()

    await scan(account, astore)

    assert proxy.count("HEAD", r"/manifests/") == 3
    assert proxy.count("GET", r"/manifests/|/blobs/") == 0
    assert proxy.count("GET", r"/tags/list$") == 1


async def test_added_deleted_and_repushed_tags_are_tracked(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}app"
    async with ImagePusher(registry_anonymous) as pusher:
        keep = await pusher.push(repo, "keep")
        gone = await pusher.push(repo, "gone")
        account = make_account(registry_anonymous.url, repositories=[repo], trackDigests=True)
        await scan(account, astore)
        new = await pusher.push(repo, "new")
        await pusher.delete(repo, gone.digest)
        moved = await pusher.push(repo, "keep")

        run = await scan(account, astore)

    assert digests(astore, repo) == {"keep": moved.digest, "new": new.digest}
    assert (run.tags_added, run.tags_changed, run.tags_removed) == (1, 1, 1)
    history = astore.store.tag_history(ACCOUNT, repo)
    assert {(h.kind, h.tag, h.digest, h.previous_digest) for h in history} >= {
        ("added", "new", new.digest, None),
        ("removed", "gone", None, gone.digest),
        ("changed", "keep", moved.digest, keep.digest),
    }


async def test_multi_arch_images_record_the_index_and_every_platform(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}multi"
    async with ImagePusher(registry_anonymous) as pusher:
        oci = await pusher.push(repo, "oci", kind="oci-index", created=T1, labels={"a": "1"})
        docker = await pusher.push(repo, "docker", kind="docker-list", created=T2)
    account = make_account(registry_anonymous.url, repositories=[repo], **ALL_FLAGS)

    await scan(account, astore)

    for pushed, created in ((oci, T1), (docker, T2)):
        image = astore.store.get_image(ACCOUNT, repo, pushed.tag)
        assert image is not None
        assert image.digest == image.index_digest == pushed.digest
        # keyed os/arch[/variant], as docker names platforms (the pusher leaves the variant out)
        assert set(image.platform_digests) == {"linux/amd64", "linux/arm64/v8"}
        assert image.platform_digests["linux/amd64"] == pushed.platforms["linux/amd64"]
        assert image.platform_digests["linux/arm64/v8"] == pushed.platforms["linux/arm64"]
        assert image.created == created
    labelled = astore.store.get_image(ACCOUNT, repo, "oci")
    assert labelled is not None
    assert labelled.labels == {"a": "1"}


async def test_created_comes_from_the_annotation_without_fetching_the_config(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    repo = f"{unique_name}annotated"
    stamp = "2023-07-04T12:30:00Z"
    async with ImagePusher(registry_anonymous) as pusher:
        await pusher.push(repo, "v1", kind="oci", created=T1,
                          annotations={"org.opencontainers.image.created": stamp})  # fmt: skip
        await pusher.push(repo, "v2", kind="oci", created=T2)
    proxy = fault_proxy_factory(registry_anonymous)
    account = make_account(proxy.url, repositories=[repo], sortTagsByDate=True)

    await scan(account, astore)

    v1 = astore.store.get_image(ACCOUNT, repo, "v1")
    v2 = astore.store.get_image(ACCOUNT, repo, "v2")
    assert v1 is not None
    assert v1.created == dt.datetime(2023, 7, 4, 12, 30, tzinfo=dt.UTC)
    assert v2 is not None
    assert v2.created == T2
    assert proxy.count("GET", r"/blobs/") == 1  # only v2 needed its config blob
    assert astore.store.tags(ACCOUNT, repo, "date") == ["v2", "v1"]


async def test_shared_digests_are_fetched_once_across_repositories(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    repos = [f"{unique_name}r{i}" for i in range(3)]
    async with ImagePusher(registry_anonymous) as pusher:
        for repo in repos:  # one build pushed to three repositories: same digests
            await pusher.push(repo, "1.0", salt=f"{unique_name}same", labels={"x": "y"})
    proxy = fault_proxy_factory(registry_anonymous)
    account = make_account(proxy.url, repositories=repos[:1], inspectDigests=True)
    await scan(account, astore)
    assert proxy.count("GET", r"/manifests/") == 1
    assert proxy.count("GET", r"/blobs/") == 1
    proxy.clear_requests()

    more = make_account(proxy.url, repositories=repos, inspectDigests=True, cacheThreads=3)
    await scan(more, astore)

    assert proxy.count("HEAD", r"/manifests/") == 2  # the two new tags' digests…
    assert proxy.count("GET", r"/manifests/|/blobs/") == 0  # …and everything else from the cache
    for repo in repos:
        image = astore.store.get_image(ACCOUNT, repo, "1.0")
        assert image is not None
        assert image.labels == {"x": "y"}


async def test_cache_threads_bounds_the_requests_in_flight(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    astore: AsyncStore,
    fault_proxy_factory: ProxyFactory,
) -> None:
    repos = [f"{unique_name}p{i}" for i in range(6)]
    async with ImagePusher(registry_anonymous) as pusher:
        for repo in repos:
            await pusher.push(repo, "1", salt=f"{unique_name}p")
    proxy = fault_proxy_factory(registry_anonymous)
    proxy.add(fault_rules.slow_headers(0.2, path=r"/tags/list$", times=None))
    serial = make_account(proxy.url, repositories=repos, cacheThreads=1)
    parallel = make_account(proxy.url, repositories=repos, cacheThreads=6)

    slow = await scan(serial, astore)
    fast = await scan(parallel, astore)

    assert slow.seconds >= 6 * 0.2
    assert fast.seconds < slow.seconds / 2


async def test_scans_work_with_every_auth_mode_and_tls(
    registry_any: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}auth"
    async with ImagePusher(registry_any) as pusher:
        pushed = await pusher.push(repo, "1.0", labels={"mode": registry_any.name})
    fields: dict[str, object] = {"repositories": [repo], **ALL_FLAGS}
    if registry_any.username:
        fields |= {"username": registry_any.username, "password": registry_any.password}
    if registry_any.ca_cert:
        fields["caCert"] = registry_any.ca_cert
    account = make_account(registry_any.url, **fields)

    run = await scan(account, astore)

    assert run.status == "ok", run.to_dict()
    image = astore.store.get_image(ACCOUNT, repo, "1.0")
    assert image is not None
    assert (image.digest, image.labels) == (pushed.digest, {"mode": registry_any.name})
    if registry_any.mode == "token":
        assert run.token_fetches >= 1
