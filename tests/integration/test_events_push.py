"""Push notifications against the real registry: every claim is verified by a HEAD before the
index changes; a forged one changes nothing; the account's credentials and data needs apply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from harness import ImagePusher, PushedImage, RegistryHandle
from regwatch.config.model import DockerRegistryAccount
from regwatch.events.inbound import PushReceiver
from regwatch.events.metrics import EventMetrics
from regwatch.events.notifications import PushClaim, parse_notification
from regwatch.registry import Transport
from regwatch.store import DIGEST_CHANGED, TAG_ADDED, AsyncStore


@pytest.fixture
async def transport() -> AsyncIterator[Transport]:
    async with Transport(max_retries=1, backoff_base=0.01) as shared:
        yield shared


def account(handle: RegistryHandle, name: str = "local", **fields: Any) -> DockerRegistryAccount:
    data: dict[str, Any] = {"name": name, "address": handle.url, **fields}
    if handle.username:
        data.update(username=handle.username, password=handle.password)
    if handle.ca_cert:
        data["caCert"] = handle.ca_cert
    return DockerRegistryAccount.model_validate(data)


class Receiving:
    def __init__(self, astore: AsyncStore, transport: Transport, *accounts: DockerRegistryAccount):
        self.accounts = list(accounts)
        self.woken = 0
        self.metrics = EventMetrics()
        self.receiver = PushReceiver(
            astore,
            accounts=lambda: self.accounts,
            transport=lambda: transport,
            sinks=lambda: ["ci"],
            metrics=self.metrics,
            on_event=self._wake,
        )

    def _wake(self) -> None:
        self.woken += 1


async def push_one(handle: RegistryHandle, repo: str, tag: str, **kwargs: Any) -> PushedImage:
    async with ImagePusher(handle) as pusher:
        return await pusher.push(repo, tag, **kwargs)


def claim_at(handle: RegistryHandle, repo: str, tag: str, digest: str | None) -> PushClaim:
    """A distribution push claim naming the registry by its host."""
    return PushClaim("distribution", repo, tag, digest, (handle.host,))


def envelope(handle: RegistryHandle, repository: str, tag: str, digest: str) -> bytes:
    target = {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "url": f"{handle.url}/v2/{repository}/manifests/{digest}",
    }
    event = {"action": "push", "target": target, "request": {"host": handle.host}}
    return json.dumps({"events": [event]}).encode()


async def test_a_verified_push_is_indexed_and_fires_once(
    registry_any: RegistryHandle, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    repo = f"{unique_name}app"
    image = await push_one(registry_any, repo, "v1")
    ctx = Receiving(astore, transport, account(registry_any))
    claims = parse_notification(envelope(registry_any, repo, "v1", image.digest))
    (result,) = await ctx.receiver.receive(claims)
    assert (result.account, result.outcome) == ("local", "added")
    assert ctx.woken == 1
    (event,) = astore.store.events()
    assert (event.id, event.kind, event.tag, event.digest) == (
        result.event_id, TAG_ADDED, "v1", image.digest,
    )  # fmt: skip
    assert event.registry == registry_any.host
    again = await ctx.receiver.receive(claims)  # distribution sends it again: nothing new
    assert [r.outcome for r in again] == ["unchanged"]
    assert len(astore.store.events()) == 1


async def test_a_forged_notification_for_a_missing_tag_changes_nothing(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    repo = f"{unique_name}app"
    real = await push_one(registry_anonymous, repo, "v1")
    ctx = Receiving(astore, transport, account(registry_anonymous))
    forged = [
        claim_at(registry_anonymous, repo, "v2", real.digest),
        claim_at(registry_anonymous, f"{unique_name}nothing", "v1", None),
        claim_at(registry_anonymous, repo, "v1", "sha256:" + "0" * 64),
    ]
    results = await ctx.receiver.receive(forged)
    assert [(r.outcome, r.detail) for r in results] == [
        ("ignored", "the registry does not have this tag"),
        ("ignored", "the registry does not have this tag"),
        ("ignored", "the tag points at another digest now"),
    ]
    assert astore.store.events() == []
    assert astore.store.accounts() == []  # not even the account was created
    assert ctx.woken == 0
    assert 'regwatch_push_notifications_total{outcome="ignored",source="distribution"} 3.0' in (
        _metrics_text(ctx)
    )


def _metrics_text(ctx: Receiving) -> str:
    from prometheus_client import generate_latest

    return generate_latest(ctx.metrics.registry).decode()


async def test_claims_for_other_registries_or_repositories_are_ignored(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    repo = f"{unique_name}app"
    image = await push_one(registry_anonymous, repo, "v1")
    only_other = account(registry_anonymous, repositories=[f"{unique_name}other"])
    ctx = Receiving(astore, transport, only_other)
    elsewhere = PushClaim("distribution", repo, "v1", image.digest, ("127.0.0.1:1",))
    here = claim_at(registry_anonymous, repo, "v1", image.digest)
    results = await ctx.receiver.receive([elsewhere, here])
    assert [(r.outcome, r.detail) for r in results] == [
        ("ignored", "no account for the registry (127.0.0.1:1)"),
        ("ignored", "the account does not index the repository"),
    ]
    named = await ctx.receiver.receive([elsewhere], account="nope")
    assert named[0].detail == "no account named 'nope'"
    assert astore.store.events() == []


async def test_a_moved_tag_fires_with_track_digests_and_the_index_follows(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    repo = f"{unique_name}app"
    tracked = account(registry_anonymous, trackDigests=True)
    ctx = Receiving(astore, transport, tracked)
    async with ImagePusher(registry_anonymous) as pusher:
        first = await pusher.push(repo, "latest")
        await ctx.receiver.receive(parse_notification(envelope(registry_anonymous, repo, "latest",
                                                               first.digest)))  # fmt: skip
        second = await pusher.push(repo, "latest")
    (moved,) = await ctx.receiver.receive(
        parse_notification(envelope(registry_anonymous, repo, "latest", second.digest))
    )
    assert moved.outcome == "changed"
    kinds = [(e.kind, e.digest, e.previous_digest) for e in astore.store.events()]
    assert kinds == [(TAG_ADDED, first.digest, None), (DIGEST_CHANGED, second.digest, first.digest)]
    assert astore.store.known_tags("local", repo) == {"latest": second.digest}


async def test_a_pushed_tag_gets_the_data_the_account_asks_for(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    repo = f"{unique_name}app"
    created = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
    image = await push_one(
        registry_anonymous,
        repo,
        "v1",
        kind="oci-index",
        labels={"commitId": "abc"},
        created=created,
    )
    full = account(registry_anonymous, inspectDigests=True, sortTagsByDate=True)
    ctx = Receiving(astore, transport, full)
    claim = claim_at(registry_anonymous, repo, "v1", image.digest)
    (result,) = await ctx.receiver.receive([claim])
    assert result.outcome == "added"
    stored = astore.store.get_image("local", repo, "v1")
    assert stored is not None
    assert stored.digest == stored.index_digest == image.digest
    assert set(stored.platform_digests.values()) == set(image.platforms.values())
    assert stored.labels == {"commitId": "abc"}
    assert stored.created == created


async def test_an_unreachable_registry_leaves_the_claim_unverified(
    registry_factory: Any, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    handle = registry_factory()
    ctx = Receiving(astore, transport, account(handle))
    handle.process.down()
    claim = claim_at(handle, f"{unique_name}app", "v1", None)
    (result,) = await ctx.receiver.receive([claim])
    assert result.outcome == "unverified"
    assert result.retryable
    assert astore.store.events() == []


async def test_a_notification_that_arrives_before_the_tag_is_linked_is_confirmed(
    registry_anonymous: RegistryHandle, unique_name: str, astore: AsyncStore, transport: Transport
) -> None:
    """Distribution notifies before it links the tag: the HEAD is asked again, not given up."""
    repo = f"{unique_name}app"
    ctx = Receiving(astore, transport, account(registry_anonymous))
    async with ImagePusher(registry_anonymous) as pusher:
        await pusher.push(repo, "other")  # the repository exists, the tag not yet
        claim = claim_at(registry_anonymous, repo, "v1", None)
        receiving = asyncio.create_task(ctx.receiver.receive([claim]))
        await asyncio.sleep(0.1)
        image = await pusher.push(repo, "v1")
        (result,) = await receiving
    assert result.outcome == "added"
    assert astore.store.known_tags("local", repo) == {"v1": image.digest}
