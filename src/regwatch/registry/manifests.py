"""Pure parsing of manifests, image configs, media types and digests. No I/O.

Parsers raise `ValueError` with a short reason on anything malformed; the client turns that into
a ProtocolError naming the registry and repository. Registry data is untrusted: fields of the
wrong type are ignored rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from regwatch.models import (
    INDEX_MEDIA_TYPES,
    OCI_INDEX,
    ImageConfig,
    ManifestInfo,
    PlatformManifest,
)

_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_UNTYPED = frozenset({"", "application/json", "application/octet-stream"})


def media_type_base(content_type: str | None) -> str:
    """`application/x; charset=utf-8` → `application/x` (lower-cased); None/empty → ''."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_digest(reference: str) -> bool:
    """True if `reference` is a digest (`algo:hex`) rather than a tag."""
    return ":" in reference and _DIGEST.fullmatch(reference) is not None


def check_digest(value: str) -> str:
    """`value` if it is a well-formed sha256/sha512 digest; else ValueError."""
    if _SHA256.fullmatch(value):  # the usual case, on the hot path of every HEAD
        return value
    match = _DIGEST.fullmatch(value)
    if match is None:
        raise ValueError(f"malformed digest {value[:80]!r}")
    algorithm, hex_part = match.groups()
    length = _HEX_LENGTHS.get(algorithm)
    if length is None:
        raise ValueError(f"unsupported digest algorithm {algorithm[:20]!r}")
    if len(hex_part) != length or any(c not in "0123456789abcdef" for c in hex_part):
        raise ValueError(f"malformed {algorithm} digest")
    return value


def compute_digest(body: bytes, algorithm: str = "sha256") -> str:
    """`algorithm:hex` of `body` (sha256 or sha512)."""
    if algorithm not in _HEX_LENGTHS:
        raise ValueError(f"unsupported digest algorithm {algorithm[:20]!r}")
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def digest_matches(body: bytes, digest: str) -> bool:
    """True if `body` hashes to `digest` (whose algorithm is used)."""
    algorithm = digest.split(":", 1)[0]
    return algorithm in _HEX_LENGTHS and compute_digest(body, algorithm) == digest


def load_json_object(body: bytes, what: str) -> dict[str, Any]:
    """`body` as a JSON object; ValueError naming `what` otherwise."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} is not a JSON object")
    return data


def parse_manifest(body: bytes, digest: str, content_type: str | None) -> ManifestInfo:
    """A ManifestInfo from a manifest body whose digest is already known (and verified)."""
    data = load_json_object(body, "the manifest")
    declared = data.get("mediaType")
    media_type = declared if isinstance(declared, str) and declared else ""
    media_type = media_type or media_type_base(content_type)
    annotations = _string_map(data.get("annotations"))
    # An OCI index may omit mediaType (and be served as application/json): its shape tells.
    looks_like_index = "manifests" in data and "config" not in data
    if media_type in INDEX_MEDIA_TYPES or (looks_like_index and media_type in _UNTYPED):
        return ManifestInfo(
            digest=digest,
            media_type=media_type if media_type in INDEX_MEDIA_TYPES else OCI_INDEX,
            size=len(body),
            platforms=_platforms(data.get("manifests")),
            annotations=annotations,
        )
    config = data.get("config")
    config_digest = config.get("digest") if isinstance(config, dict) else None
    if config_digest is not None:
        config_digest = check_digest(config_digest) if isinstance(config_digest, str) else None
    return ManifestInfo(
        digest=digest,
        media_type=media_type,
        size=len(body),
        config_digest=config_digest,
        annotations=annotations,
    )


def _platforms(entries: Any) -> tuple[PlatformManifest, ...]:
    if not isinstance(entries, list):
        raise ValueError("the index has no manifests list")
    platforms: list[PlatformManifest] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            raise ValueError("an index entry has no digest")
        platform = entry.get("platform")
        platform = platform if isinstance(platform, dict) else {}
        platforms.append(
            PlatformManifest(
                digest=check_digest(entry["digest"]),
                media_type=_str(entry.get("mediaType")) or "",
                os=_str(platform.get("os")),
                architecture=_str(platform.get("architecture")),
                variant=_str(platform.get("variant")),
            )
        )
    return tuple(platforms)


def parse_image_config(body: bytes, digest: str) -> ImageConfig:
    """An ImageConfig from a config blob: `created`, `config.Labels`, os and architecture."""
    data = load_json_object(body, "the image config")
    inner = data.get("config")
    labels = _string_map(inner.get("Labels")) if isinstance(inner, dict) else {}
    return ImageConfig(
        digest=digest,
        created=parse_timestamp(data.get("created")),
        labels=labels,
        os=_str(data.get("os")),
        architecture=_str(data.get("architecture")),
    )


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (Go writes up to nanoseconds); None if absent, naive or invalid."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    match = re.fullmatch(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text, re.IGNORECASE)
    if match is None:
        return None
    head, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]  # Python keeps microseconds: '.' + 6 digits
    offset = "+00:00" if zone.upper() == "Z" else zone
    try:
        parsed = datetime.fromisoformat(f"{head}{fraction}{offset}")
    except ValueError:
        return None
    return parsed


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _string_map(value: Any) -> dict[str, str]:
    """A JSON object of strings (labels, annotations); other entries dropped."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
