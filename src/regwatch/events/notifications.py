"""Parse registry push notifications into claims "this tag was pushed". Pure.

Accepted bodies (the format is recognised from the body, whatever the Content-Type):
- CNCF distribution's envelope (`application/vnd.docker.distribution.events.v2+json`):
  `{"events": [{"action": "push", "target": {"repository", "tag", "digest", "mediaType",
  "url"}, "request": {"host"}}]}`. Only manifest pushes with a tag count; blob pushes, pulls
  and pushes by digest are ignored.
- Docker Hub: `{"push_data": {"tag"}, "repository": {"repo_name"}}` (no digest).
- Harbor, default format `{"type": "PUSH_ARTIFACT", "event_data": {"repository":
  {"repo_full_name"}, "resources": [{"tag", "digest", "resource_url"}]}}`, and its CloudEvents
  format (`"type": "harbor.artifact.pushed"`, the same under `data`).

A claim is only a claim: nothing in it is trusted until the registry confirms it (`inbound.py`).
Names are checked against the distribution grammar here so that junk never reaches the registry
client or the store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from regwatch.reference import DOCKER_HUB_ALIASES

MAX_BODY = 1 << 20
MAX_CLAIMS = 200
DISTRIBUTION_MEDIA_TYPE = "application/vnd.docker.distribution.events.v2+json"
MANIFEST_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    }
)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]{1,5})?")


class NotificationError(ValueError):
    """The body is not a notification regwatch understands."""


@dataclass(frozen=True)
class PushClaim:
    """A notification's statement that `repository:tag` was pushed (at `digest`, if given)."""

    source: str  # distribution | dockerhub | harbor
    repository: str
    tag: str
    digest: str | None
    hosts: tuple[str, ...]  # registry host[:port] names the notification mentions


def parse_notification(body: bytes) -> list[PushClaim]:
    """Every valid push claim in the body, deduplicated, at most MAX_CLAIMS."""
    if len(body) > MAX_BODY:
        raise NotificationError(f"the notification is larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise NotificationError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise NotificationError("the body is not a JSON object")
    if isinstance(data.get("events"), list):
        claims = _distribution(data["events"])
    elif isinstance(data.get("push_data"), dict):
        claims = _docker_hub(data)
    elif data.get("type") in ("PUSH_ARTIFACT", "harbor.artifact.pushed"):
        payload = (
            data.get("event_data") if data.get("type") == "PUSH_ARTIFACT" else data.get("data")
        )
        claims = _harbor(payload if isinstance(payload, dict) else {})
    else:
        raise NotificationError(
            "unknown notification format — expected a distribution envelope, a Docker Hub or a "
            "Harbor push webhook"
        )
    return list(dict.fromkeys(c for c in claims if _valid(c)))[:MAX_CLAIMS]


def _valid(claim: PushClaim) -> bool:
    return (
        REPOSITORY.fullmatch(claim.repository) is not None
        and TAG.fullmatch(claim.tag) is not None
        and (claim.digest is None or DIGEST.fullmatch(claim.digest) is not None)
    )


def _text(node: Any, key: str) -> str | None:
    value = node.get(key) if isinstance(node, Mapping) else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _hosts(*candidates: str | None) -> tuple[str, ...]:
    found = [c.lower() for c in candidates if c and HOST.fullmatch(c)]
    return tuple(dict.fromkeys(found))


def _url_host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or None
    except ValueError:
        return None


def _distribution(events: Iterable[Any]) -> list[PushClaim]:
    claims = []
    for event in events:
        if not isinstance(event, Mapping) or event.get("action") != "push":
            continue
        target = event.get("target")
        repository, tag = _text(target, "repository"), _text(target, "tag")
        media_type = _text(target, "mediaType")
        if not (repository and tag) or (media_type and media_type not in MANIFEST_MEDIA_TYPES):
            continue
        hosts = _hosts(_text(event.get("request"), "host"), _url_host(_text(target, "url")))
        claims.append(PushClaim("distribution", repository, tag, _text(target, "digest"), hosts))
    return claims


def _docker_hub(data: Mapping[str, Any]) -> list[PushClaim]:
    name = _text(data.get("repository"), "repo_name")
    tag = _text(data.get("push_data"), "tag")
    if not (name and tag):
        return []
    repository = name if "/" in name else f"library/{name}"
    return [PushClaim("dockerhub", repository, tag, None, tuple(sorted(DOCKER_HUB_ALIASES)))]


def _harbor(data: Mapping[str, Any]) -> list[PushClaim]:
    repository = _text(data.get("repository"), "repo_full_name")
    resources = data.get("resources")
    if not repository or not isinstance(resources, list):
        return []
    claims = []
    for resource in resources:
        tag = _text(resource, "tag")
        if not tag:
            continue
        url = _text(resource, "resource_url") or ""
        host = url.split("/", 1)[0] if "/" in url else None
        claims.append(PushClaim("harbor", repository, tag, _text(resource, "digest"), _hosts(host)))
    return claims
