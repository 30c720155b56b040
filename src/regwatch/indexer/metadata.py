"""Per-tag registry calls: digests by HEAD, manifests and config blobs through the cache.

A tag's digest always comes from a manifest HEAD (with the full Accept list), which does not
count against Docker Hub's pull quota. Anything more is asked by digest, and a digest names
immutable content, so the store's content-addressed cache is consulted first: a manifest or a
config blob is fetched from the registry once, ever, however many tags or repositories share it.

What is recorded for a tag:
- `digest`: what the tag resolves to (the index's digest for a multi-platform image);
- for an index, `index_digest` (the same) and `platform_digests` ("linux/arm64/v8" → digest);
  its labels and creation date are those of a representative platform (linux/amd64, else the
  first real platform);
- `created`: the manifest's `org.opencontainers.image.created` annotation when present (no config
  blob fetch needed), else the config blob's `created`;
- `labels`: the config blob's `config.Labels`.
Work is done for a batch of tags at once, so that cache lookups and writes are one store call
per batch and a digest shared by several tags of the batch is fetched once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from regwatch.errors import RegwatchError
from regwatch.indexer.plan import TagNeeds
from regwatch.models import ImageConfig, ManifestInfo, PlatformManifest
from regwatch.registry import RegistryClient
from regwatch.registry.manifests import parse_timestamp
from regwatch.store import AsyncStore, Store

CREATED_ANNOTATION = "org.opencontainers.image.created"
PREFERRED_PLATFORM = ("linux", "amd64")
T = TypeVar("T")
K = TypeVar("K")


@dataclass(frozen=True)
class TagData:
    """What the registry told us about one tag (see the module docstring)."""

    digest: str
    index_digest: str | None = None
    platform_digests: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


class MetadataFetcher:
    """The per-tag calls of one account's scan. `limit` bounds the account's requests in flight."""

    def __init__(
        self,
        client: RegistryClient,
        store: AsyncStore,
        needs: TagNeeds,
        limit: asyncio.Semaphore,
    ) -> None:
        self.client = client
        self.store = store
        self.needs = needs
        self.limit = limit

    async def heads(
        self, repository: str, tags: Sequence[str]
    ) -> dict[str, ManifestInfo | RegwatchError]:
        """A manifest HEAD of each tag: its digest and media type, or the error."""

        async def head(tag: str) -> ManifestInfo:
            return await self.client.head_manifest(repository, tag)

        return await self._each(tags, head)

    async def describe(
        self, repository: str, heads: dict[str, ManifestInfo]
    ) -> dict[str, TagData | RegwatchError]:
        """Everything the account wants to know about tags whose HEAD succeeded."""
        tops = await self._manifests(repository, _digests_needing_manifest(heads.values(), self))
        children = {
            digest: child.digest
            for digest, info in tops.items()
            if isinstance(info, ManifestInfo) and (child := representative(info.platforms))
        }
        child_infos: dict[str, ManifestInfo | RegwatchError] = {}
        if self.needs.config_blob and children:
            child_infos = await self._manifests(repository, set(children.values()))
        images = {**tops, **child_infos}
        configs = await self._configs(repository, self._config_digests(images.values()))
        result: dict[str, TagData | RegwatchError] = {}
        for tag, head in heads.items():
            result[tag] = self._tag_data(head, tops, children, images, configs)
        return result

    # --- assembling ----------------------------------------------------------------------------
    def needs_manifest(self, head: ManifestInfo) -> bool:
        """The manifest body is wanted: platforms of an index, annotations, the config digest."""
        return head.is_index or self.needs.config_blob

    def _config_digests(self, infos: Iterable[ManifestInfo | RegwatchError]) -> set[str]:
        if not self.needs.config_blob:
            return set()
        wanted = set()
        for info in infos:
            if isinstance(info, ManifestInfo) and info.config_digest and self._wants_config(info):
                wanted.add(info.config_digest)
        return wanted

    def _wants_config(self, info: ManifestInfo) -> bool:
        return self.needs.labels or (self.needs.created and created_annotation(info) is None)

    def _tag_data(
        self,
        head: ManifestInfo,
        tops: dict[str, ManifestInfo | RegwatchError],
        children: dict[str, str],
        images: dict[str, ManifestInfo | RegwatchError],
        configs: dict[str, ImageConfig | RegwatchError],
    ) -> TagData | RegwatchError:
        if not self.needs_manifest(head):
            return TagData(digest=head.digest)
        top = tops.get(head.digest)
        if not isinstance(top, ManifestInfo):
            return top or _missing(head.digest)
        image: ManifestInfo | RegwatchError | None = top
        if top.is_index:  # the representative platform's manifest, if it was wanted
            child = children.get(top.digest)
            image = images.get(child) if child and self.needs.config_blob else None
        if isinstance(image, RegwatchError):
            return image
        created = created_annotation(top)
        if created is None and image is not None:
            created = created_annotation(image)
        labels: dict[str, str] = {}
        if image is not None and image.config_digest and self._wants_config(image):
            config = configs.get(image.config_digest)
            if not isinstance(config, ImageConfig):
                return config or _missing(image.config_digest)
            labels = dict(config.labels) if self.needs.labels else {}
            created = created or config.created
        return TagData(
            digest=head.digest,
            index_digest=top.digest if top.is_index else None,
            platform_digests=platform_digests(top.platforms),
            created=created if self.needs.created else None,
            labels=labels,
        )

    # --- cached fetches ------------------------------------------------------------------------
    async def _manifests(
        self, repository: str, digests: set[str]
    ) -> dict[str, ManifestInfo | RegwatchError]:
        """Manifests by digest: from the cache, else GET (and cached)."""
        if not digests:
            return {}
        cached = await self.store.call(Store.get_manifests, digests)
        missing = sorted(digests - cached.keys())

        async def get(digest: str) -> ManifestInfo:
            return await self.client.get_manifest(repository, digest)

        fetched = await self._each(missing, get)
        fresh = [info for info in fetched.values() if isinstance(info, ManifestInfo)]
        if fresh:
            await self.store.call(Store.put_manifests, fresh)
        return {**cached, **fetched}

    async def _configs(
        self, repository: str, digests: set[str]
    ) -> dict[str, ImageConfig | RegwatchError]:
        """Config blobs by digest: from the cache, else GET (and cached)."""
        if not digests:
            return {}
        cached = await self.store.call(Store.get_configs, digests)
        missing = sorted(digests - cached.keys())

        async def get(digest: str) -> ImageConfig:
            return await self.client.get_image_config(repository, digest)

        fetched = await self._each(missing, get)
        fresh = [config for config in fetched.values() if isinstance(config, ImageConfig)]
        if fresh:
            await self.store.call(Store.put_configs, fresh)
        return {**cached, **fetched}

    async def _each(
        self, keys: Iterable[K], call: Callable[[K], Awaitable[T]]
    ) -> dict[K, T | RegwatchError]:
        """`call(key)` for every key, at most `limit` at a time; errors are returned, not raised."""

        async def one(key: K) -> T | RegwatchError:
            async with self.limit:
                try:
                    return await call(key)
                except RegwatchError as exc:
                    return exc

        keys = list(keys)
        results = await asyncio.gather(*(one(key) for key in keys))
        return dict(zip(keys, results, strict=True))


def _digests_needing_manifest(heads: Iterable[ManifestInfo], fetcher: MetadataFetcher) -> set[str]:
    return {head.digest for head in heads if fetcher.needs_manifest(head)}


def _missing(digest: str) -> RegwatchError:  # pragma: no cover - a fetch always yields a result
    return RegwatchError(f"no data for {digest[:19]}…")


def representative(platforms: Sequence[PlatformManifest]) -> PlatformManifest | None:
    """The platform whose labels and date stand for an index: linux/amd64, else the first real
    one (attestation manifests are listed as unknown/unknown), else None."""
    real = [p for p in platforms if p.os not in (None, "unknown")]
    for platform in real:
        if (platform.os, platform.architecture) == PREFERRED_PLATFORM and not platform.variant:
            return platform
    return real[0] if real else (platforms[0] if platforms else None)


def platform_digests(platforms: Sequence[PlatformManifest]) -> dict[str, str]:
    """`os/arch[/variant]` → digest of each real platform of an index (first one wins)."""
    found: dict[str, str] = {}
    for platform in platforms:
        if platform.os in (None, "unknown"):
            continue
        found.setdefault(platform.platform, platform.digest)
    return found


def created_annotation(info: ManifestInfo) -> datetime | None:
    return parse_timestamp(info.annotations.get(CREATED_ANNOTATION))
