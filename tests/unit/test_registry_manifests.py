"""Manifest, index and image-config parsing; media types; digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.models import (
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST_V2,
    OCI_INDEX,
    OCI_MANIFEST,
)
from regwatch.registry.manifests import (
    check_digest,
    compute_digest,
    digest_matches,
    is_digest,
    media_type_base,
    parse_image_config,
    parse_manifest,
    parse_timestamp,
)

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64


def dumps(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("application/vnd.oci.image.index.v1+json", OCI_INDEX),
        ("Application/VND.OCI.image.manifest.v1+json; charset=utf-8", OCI_MANIFEST),
        (None, ""),
        ("", ""),
    ],
)
def test_media_type_base(header: str | None, expected: str) -> None:
    assert media_type_base(header) == expected


def test_docker_schema2_manifest() -> None:
    body = dumps({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": D1},
        "layers": [{"digest": D2}],
    })  # fmt: skip
    info = parse_manifest(body, D3, DOCKER_MANIFEST_V2)
    assert info.digest == D3
    assert info.media_type == DOCKER_MANIFEST_V2
    assert info.config_digest == D1
    assert info.size == len(body)
    assert not info.is_index
    assert info.platforms == ()


def test_oci_manifest_with_annotations_and_type_from_header() -> None:
    body = dumps({
        "schemaVersion": 2,
        "config": {"digest": D1},
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "n": 5},
    })  # fmt: skip
    info = parse_manifest(body, D3, OCI_MANIFEST)
    assert info.media_type == OCI_MANIFEST
    assert info.annotations == {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_index_platforms(media_type: str) -> None:
    body = dumps({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"digest": D1, "mediaType": OCI_MANIFEST,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"digest": D2, "mediaType": OCI_MANIFEST,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": D3, "mediaType": OCI_MANIFEST},  # attestation-like entry, no platform
        ],
    })  # fmt: skip
    info = parse_manifest(body, "sha256:" + "d" * 64, None)
    assert info.is_index
    assert info.media_type == media_type
    assert [p.platform for p in info.platforms] == ["linux/amd64", "linux/arm64/v8", "unknown"]
    assert [p.digest for p in info.platforms] == [D1, D2, D3]
    assert info.config_digest is None


def test_oci_index_without_media_type_is_recognised_by_shape() -> None:
    body = dumps({"schemaVersion": 2, "manifests": [{"digest": D1}]})
    info = parse_manifest(body, D3, "application/json")
    assert info.media_type == OCI_INDEX
    assert info.is_index


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (dumps({"mediaType": OCI_INDEX, "manifests": [{"size": 1}]}), "no digest"),
        (dumps({"mediaType": OCI_INDEX, "manifests": "x"}), "no manifests"),
        (dumps({"mediaType": OCI_MANIFEST, "config": {"digest": "sha256:short"}}), "digest"),
    ],
)
def test_malformed_manifests(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_manifest(body, D3, None)


def test_image_config() -> None:
    body = dumps({
        "created": "2024-03-04T05:06:07.123456789Z",
        "os": "linux",
        "architecture": "arm64",
        "config": {"Labels": {"org.opencontainers.image.revision": "abc", "team": "x", "bad": 1}},
    })  # fmt: skip
    config = parse_image_config(body, D1)
    assert config.digest == D1
    assert config.created == datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert config.labels == {"org.opencontainers.image.revision": "abc", "team": "x"}
    assert (config.os, config.architecture) == ("linux", "arm64")


def test_image_config_without_created_or_labels() -> None:
    config = parse_image_config(dumps({"config": {"Labels": None}}), D1)
    assert config.created is None
    assert config.labels == {}
    assert config.os is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.5+02:00",
         datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=timezone(timedelta(hours=2)))),
        ("2024-01-02T03:04:05.123456789z", datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2024-01-02T03:04:05", None),  # no zone
        ("2024-13-02T03:04:05Z", None),
        ("", None),
        (None, None),
        (17, None),
    ],
)  # fmt: skip
def test_parse_timestamp(text: object, expected: datetime | None) -> None:
    assert parse_timestamp(text) == expected


def test_digests() -> None:
    assert is_digest(D1)
    assert not is_digest("latest")
    assert not is_digest("v1.0")
    assert not is_digest(D1 + "\n")
    assert check_digest(D1) == D1
    assert check_digest("sha512:" + "0" * 128)
    for bad in [
        "sha256:" + "A" * 64,
        "sha256:abc",
        "md5:" + "0" * 32,
        "sha256",
        "x:y:z",
        D1 + "\n",
    ]:
        with pytest.raises(ValueError, match="digest"):
            check_digest(bad)
    body = b'{"a": 1}'
    assert compute_digest(body) == "sha256:" + hashlib.sha256(body).hexdigest()
    assert digest_matches(body, compute_digest(body))
    assert digest_matches(body, compute_digest(body, "sha512"))
    assert not digest_matches(body + b" ", compute_digest(body))
    assert not digest_matches(body, "md5:" + "0" * 32)


@given(st.binary(max_size=300))
def test_digest_round_trip(body: bytes) -> None:
    digest = compute_digest(body)
    assert check_digest(digest) == digest
    assert digest_matches(body, digest)


@given(st.binary(max_size=200))
def test_parsers_only_raise_value_error(body: bytes) -> None:
    for parse in (lambda: parse_manifest(body, D1, None), lambda: parse_image_config(body, D1)):
        with contextlib.suppress(ValueError):
            parse()


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["mediaType", "manifests", "config", "digest", "platform", "annotations",
                         "created", "Labels", "os"]), children, max_size=4),
    max_leaves=20,
))  # fmt: skip
def test_parsers_survive_arbitrary_json_shapes(value: object) -> None:
    body = dumps(value)
    for parse in (lambda: parse_manifest(body, D1, None), lambda: parse_image_config(body, D1)):
        with contextlib.suppress(ValueError):
            parse()
