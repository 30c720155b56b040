"""Pure helpers of the per-tag metadata: representative platform, platform map, created date."""

from __future__ import annotations

from datetime import UTC, datetime

from regwatch.indexer.metadata import created_annotation, platform_digests, representative
from regwatch.models import OCI_MANIFEST, ManifestInfo, PlatformManifest


def platform(
    digest: str, os: str | None, arch: str | None, variant: str | None = None
) -> PlatformManifest:
    return PlatformManifest(f"sha256:{digest}", OCI_MANIFEST, os, arch, variant)


ARM = platform("a1", "linux", "arm64", "v8")
AMD = platform("a2", "linux", "amd64")
ATTESTATION = platform("a3", "unknown", "unknown")
WINDOWS = platform("a4", "windows", "amd64")


def test_linux_amd64_represents_an_index() -> None:
    assert representative([ATTESTATION, ARM, AMD]) == AMD


def test_otherwise_the_first_real_platform() -> None:
    assert representative([ATTESTATION, WINDOWS, ARM]) == WINDOWS
    assert representative([ATTESTATION]) == ATTESTATION
    assert representative([]) is None


def test_platform_digests_skip_attestations_and_keep_the_first_duplicate() -> None:
    again = platform("a5", "linux", "amd64")
    assert platform_digests([AMD, ARM, ATTESTATION, again]) == {
        "linux/amd64": "sha256:a2",
        "linux/arm64/v8": "sha256:a1",
    }


def test_created_annotation() -> None:
    def info(annotations: dict[str, str]) -> ManifestInfo:
        return ManifestInfo("sha256:00", OCI_MANIFEST, annotations=annotations)

    key = "org.opencontainers.image.created"
    assert created_annotation(info({key: "2024-02-03T04:05:06.123456789Z"})) == datetime(
        2024, 2, 3, 4, 5, 6, 123456, tzinfo=UTC
    )
    assert created_annotation(info({key: "yesterday"})) is None
    assert created_annotation(info({})) is None
