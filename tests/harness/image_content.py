"""Pure builders for synthetic image content: one shared layer, configs, manifests, indexes.

Everything is canonical JSON (sorted keys, no spaces), so the digest a test computes is the digest
the registry stores.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# Always ask for all four: distribution converts or hides what the Accept list leaves out.
ACCEPT_MANIFESTS = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

KINDS = ("docker", "oci", "oci-index", "docker-list")
INDEX_PLATFORMS = (("linux", "amd64", None), ("linux", "arm64", "v8"))


@dataclass(frozen=True)
class KindTypes:
    manifest: str  # media type of the tagged manifest
    child: str  # media type of the single-platform manifests
    config: str
    layer: str
    is_index: bool


KIND_TYPES = {
    "docker": KindTypes(DOCKER_MANIFEST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER, False),
    "oci": KindTypes(OCI_MANIFEST, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, False),
    "oci-index": KindTypes(OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, True),
    "docker-list": KindTypes(DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER, True),
}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
            **extra,
        }


@dataclass(frozen=True)
class Layer:
    """The one small layer every synthetic image shares (a gzipped tar with one file)."""

    compressed: bytes
    diff_id: str

    def blob(self, media_type: str) -> Blob:
        return Blob(self.compressed, media_type)


@functools.cache
def shared_layer() -> Layer:
    payload = b"regwatch test harness layer\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("regwatch/hello.txt")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return Layer(gzip.compress(tar_bytes, mtime=0), digest_of(tar_bytes))


def rfc3339(moment: dt.datetime) -> str:
    """UTC RFC 3339 with a Z (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def config_blob(
    media_type: str,
    *,
    created: dt.datetime,
    labels: dict[str, str] | None,
    salt: str,
    os_name: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
) -> Blob:
    """An image config; the salt (in Env) makes it, and so the manifest digest, unique."""
    stamp = rfc3339(created)
    config: dict[str, Any] = {
        "architecture": architecture,
        "os": os_name,
        "created": stamp,
        "config": {"Labels": dict(labels) if labels else None, "Env": [f"REGWATCH_SALT={salt}"]},
        "rootfs": {"type": "layers", "diff_ids": [shared_layer().diff_id]},
        "history": [{"created": stamp, "created_by": "regwatch test harness"}],
    }
    if variant:
        config["variant"] = variant
    return Blob(canonical_json(config), media_type)


def image_manifest(
    types: KindTypes, config: Blob, annotations: dict[str, str] | None = None
) -> Blob:
    """A schema2 or OCI single-platform manifest for `config` and the shared layer."""
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": types.child,
        "config": config.descriptor(),
        "layers": [shared_layer().blob(types.layer).descriptor()],
    }
    if annotations:
        body["annotations"] = dict(annotations)
    return Blob(canonical_json(body), types.child)


def index_manifest(
    types: KindTypes,
    children: list[tuple[tuple[str, str, str | None], Blob]],
    annotations: dict[str, str] | None = None,
) -> Blob:
    """An OCI index or Docker manifest list over `children` ((os, arch, variant), manifest)."""
    entries = []
    for (os_name, arch, variant), child in children:
        platform = {"os": os_name, "architecture": arch}
        if variant:
            platform["variant"] = variant
        entries.append(child.descriptor(platform=platform))
    body: dict[str, Any] = {"schemaVersion": 2, "mediaType": types.manifest, "manifests": entries}
    if annotations:
        body["annotations"] = dict(annotations)
    return Blob(canonical_json(body), types.manifest)
