"""Content-addressed metadata cache: manifests and image config blobs by digest.

A digest names immutable content, so an entry is written once and never updated or expired:
the indexer asks the cache before any manifest GET or config blob fetch, and a config blob shared
by a thousand tags is fetched once, ever.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from regwatch.models import ImageConfig, ManifestInfo, PlatformManifest
from regwatch.store.dialect import insert_ignoring_conflicts
from regwatch.store.records import from_ms, to_ms
from regwatch.store.schema import config_cache, manifest_cache

_BATCH = 500


def put_manifests(conn: Connection, infos: Iterable[ManifestInfo], now: int) -> None:
    rows = [
        {
            "digest": info.digest,
            "media_type": info.media_type,
            "size": info.size,
            "config_digest": info.config_digest,
            "platforms": [
                {
                    "digest": p.digest,
                    "media_type": p.media_type,
                    "os": p.os,
                    "architecture": p.architecture,
                    "variant": p.variant,
                }
                for p in info.platforms
            ]
            or None,
            "annotations": dict(info.annotations) or None,
            "stored_at": now,
        }
        for info in infos
    ]
    insert_ignoring_conflicts(conn, manifest_cache, rows, keys=["digest"])


def _manifest(row: Row[Any]) -> ManifestInfo:
    return ManifestInfo(
        digest=row.digest,
        media_type=row.media_type,
        size=row.size,
        config_digest=row.config_digest,
        platforms=tuple(PlatformManifest(**p) for p in row.platforms or ()),
        annotations=row.annotations or {},
    )


def get_manifests(conn: Connection, digests: Iterable[str]) -> dict[str, ManifestInfo]:
    wanted = list(dict.fromkeys(digests))
    found: dict[str, ManifestInfo] = {}
    for start in range(0, len(wanted), _BATCH):
        query = select(manifest_cache).where(
            manifest_cache.c.digest.in_(wanted[start : start + _BATCH])
        )
        found.update({row.digest: _manifest(row) for row in conn.execute(query)})
    return found


def put_configs(conn: Connection, configs: Iterable[ImageConfig], now: int) -> None:
    rows = [
        {
            "digest": config.digest,
            "created_ms": to_ms(config.created) if config.created else None,
            "labels": dict(config.labels) or None,
            "os": config.os,
            "architecture": config.architecture,
            "stored_at": now,
        }
        for config in configs
    ]
    insert_ignoring_conflicts(conn, config_cache, rows, keys=["digest"])


def get_configs(conn: Connection, digests: Iterable[str]) -> dict[str, ImageConfig]:
    wanted = list(dict.fromkeys(digests))
    found: dict[str, ImageConfig] = {}
    for start in range(0, len(wanted), _BATCH):
        query = select(config_cache).where(
            config_cache.c.digest.in_(wanted[start : start + _BATCH])
        )
        for row in conn.execute(query):
            found[row.digest] = ImageConfig(
                digest=row.digest,
                created=from_ms(row.created_ms),
                labels=row.labels or {},
                os=row.os,
                architecture=row.architecture,
            )
    return found
