"""Frozen dataclasses shared by every layer. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Secret:
    """A string that never shows itself: `str()`/`repr()` give `********`.

    Call `reveal()` at the one place the real value is needed (an Authorization header).
    """

    __slots__ = ("_value",)
    MASK = "********"

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return self.MASK

    def __repr__(self) -> str:
        return f"Secret({self.MASK!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class BasicCredentials:
    """A username and password for a registry (or its token service)."""

    username: str
    password: Secret

    def __repr__(self) -> str:
        return f"BasicCredentials(username={self.username!r}, password=********)"


@dataclass(frozen=True)
class PlatformManifest:
    """One entry of a manifest list / OCI index."""

    digest: str
    media_type: str
    os: str | None = None
    architecture: str | None = None
    variant: str | None = None

    @property
    def platform(self) -> str:
        parts = [p for p in (self.os, self.architecture, self.variant) if p]
        return "/".join(parts) if parts else "unknown"


@dataclass(frozen=True)
class ManifestInfo:
    """What a manifest HEAD or GET told us about one reference (tag or digest)."""

    digest: str
    media_type: str
    size: int | None = None
    config_digest: str | None = None  # image manifests only
    platforms: tuple[PlatformManifest, ...] = ()  # manifest lists / indexes only
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return bool(self.platforms) or self.media_type in INDEX_MEDIA_TYPES


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image config blob regwatch keeps."""

    digest: str
    created: datetime | None
    labels: dict[str, str] = field(default_factory=dict)
    os: str | None = None
    architecture: str | None = None


@dataclass(frozen=True)
class ImageRef:
    """One tagged image in one account."""

    account: str
    registry: str  # address without scheme, may carry :port
    repository: str
    tag: str


@dataclass(frozen=True)
class TagRecord:
    """A tagged image as stored in the index."""

    account: str
    registry: str
    repository: str
    tag: str
    digest: str | None = None
    index_digest: str | None = None
    platform_digests: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    last_changed: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Media types (https://github.com/opencontainers/image-spec, docker distribution).
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

INDEX_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
IMAGE_MEDIA_TYPES = frozenset({DOCKER_MANIFEST_V2, OCI_MANIFEST})
MANIFEST_ACCEPT = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2)


class CredentialSource(Protocol):
    """Where a registry client gets Basic credentials from (see `regwatch.config.secrets`).

    `get()` may read a file or run a command, and caches as the source sees fit; `invalidate()`
    is called after the registry refused the credentials (401), so that the next `get()`
    re-reads the file / re-runs the command instead of returning the cached value.
    """

    async def get(self) -> BasicCredentials | None: ...

    def invalidate(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """How to reach one registry: everything the registry client needs apart from credentials."""

    address: str  # normalised by regwatch.reference.normalize_address, e.g. https://host:5000
    insecure: bool = False  # skip TLS verification, for the registry *and* its token realm
    ca_cert: str | None = None  # path to a PEM bundle to trust in addition to the system CAs
    timeout_ms: int = 60_000  # connect and read timeout, per request
    paginate_size: int = 100  # n= on _catalog and tags/list
