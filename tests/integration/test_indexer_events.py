"""Which scans record events (for triggers): a silent baseline, TAG_ADDED for a new tag,
DIGEST_CHANGED for a moved tag only with trackDigests, a silent fill, delete + re-push fires."""

from __future__ import annotations

from datetime import timedelta

from indexer_support import digests, event_summary, make_account, scan

from harness import ImagePusher, RegistryHandle
from regwatch.store import DIGEST_CHANGED, TAG_ADDED, AsyncStore


async def test_first_scan_is_a_silent_baseline_then_new_tags_fire_once(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}app"
    account = make_account(registry_anonymous.url, repositories=[repo], trackDigests=True)
    async with ImagePusher(registry_anonymous) as pusher:
        await pusher.push(repo, "1.0")
        await pusher.push(repo, "1.1")
        baseline = await scan(account, astore, sinks=["echo"])
        assert (baseline.tags_added, baseline.events) == (2, 0)
        assert event_summary(astore) == []
        new = await pusher.push(repo, "1.2")

    run = await scan(account, astore, sinks=["echo", "hook"])
    again = await scan(account, astore, sinks=["echo", "hook"])

    assert run.events == 1
    assert again.events == 0
    assert event_summary(astore) == [(TAG_ADDED, "1.2", new.digest, None)]
    deliveries = astore.store.claim_deliveries("t", lease=timedelta(seconds=30), limit=10)
    assert sorted(d.sink for d in deliveries) == ["echo", "hook"]
    assert {d.event.tag for d in deliveries} == {"1.2"}


async def test_a_moved_tag_fires_only_with_track_digests(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}app"
    untracked = make_account(registry_anonymous.url, repositories=[repo])
    tracked = make_account(registry_anonymous.url, repositories=[repo], trackDigests=True)
    async with ImagePusher(registry_anonymous) as pusher:
        first = await pusher.push(repo, "latest")
        await scan(tracked, astore)
        second = await pusher.push(repo, "latest")
        quiet = await scan(untracked, astore)  # no HEAD without trackDigests: not noticed
        assert digests(astore, repo) == {"latest": first.digest}
        assert quiet.events == 0

        run = await scan(tracked, astore)

    assert run.events == 1
    assert digests(astore, repo) == {"latest": second.digest}
    assert event_summary(astore) == [(DIGEST_CHANGED, "latest", second.digest, first.digest)]


async def test_turning_on_track_digests_fills_digests_silently(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}app"
    async with ImagePusher(registry_anonymous) as pusher:
        one = await pusher.push(repo, "1")
        two = await pusher.push(repo, "2")
    await scan(make_account(registry_anonymous.url, repositories=[repo]), astore)
    assert digests(astore, repo) == {"1": None, "2": None}

    run = await scan(
        make_account(registry_anonymous.url, repositories=[repo], trackDigests=True), astore
    )

    assert digests(astore, repo) == {"1": one.digest, "2": two.digest}
    assert run.events == 0
    assert event_summary(astore) == []


async def test_a_deleted_and_repushed_tag_is_new_again(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    repo = f"{unique_name}app"
    account = make_account(registry_anonymous.url, repositories=[repo])
    salt = f"{unique_name}rc"
    async with ImagePusher(registry_anonymous) as pusher:
        await pusher.push(repo, "base")
        rc = await pusher.push(repo, "rc", salt=salt)
        await scan(account, astore)
        await pusher.delete(repo, rc.digest)
        removed = await scan(account, astore)
        assert removed.tags_removed == 1
        assert removed.events == 0
        await pusher.push(repo, "rc", salt=salt)  # the very same image again

        run = await scan(account, astore)

    assert run.tags_added == 1
    assert event_summary(astore) == [(TAG_ADDED, "rc", None, None)]  # no digest tracked


async def test_a_new_repository_of_a_known_account_starts_with_a_baseline(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore
) -> None:
    old, new = f"{unique_name}old", f"{unique_name}new"
    async with ImagePusher(registry_anonymous) as pusher:
        await pusher.push(old, "1")
        await pusher.push(new, "1")
        await pusher.push(new, "2")
    await scan(make_account(registry_anonymous.url, repositories=[old]), astore)

    run = await scan(make_account(registry_anonymous.url, repositories=[old, new]), astore)

    assert run.tags_added == 2
    assert run.events == 0
