"""What a sink receives: Echo/Igor-compatible JSON or a CloudEvents 1.0 structured event. Pure.

Echo format (`spinnaker.md` §5.1): Igor's docker event, with `source: "regwatch"`, plus the
event id (`eventId`, the field Echo reads, and `id`), its time, and the `docker/image` artifact
Echo itself attaches (§5.2) in `artifacts`. `content` holds exactly Igor's five keys, so that
Echo's parser sees what it knows; the event kind and the previous digest go in
`details.attributes`, Echo's free-form map.

Every request carries the event id as its idempotency key (`Idempotency-Key`), and, with a
secret, `X-Regwatch-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from regwatch.models import Secret
from regwatch.store.records import StoredEvent

SOURCE = "regwatch"
ECHO_CONTENT_TYPE = "application/json"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
CLOUDEVENT_TYPES = {
    "tag_added": "io.regwatch.docker.tag.added",
    "digest_changed": "io.regwatch.docker.tag.digest_changed",
}
SIGNATURE_HEADER = "X-Regwatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def iso_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.000Z`."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def docker_image_artifact(registry: str, repository: str, tag: str) -> dict[str, Any]:
    """The `docker/image` artifact Echo attaches to a docker trigger (`spinnaker.md` §5.2)."""
    name = f"{registry}/{repository}"
    return {
        "type": "docker/image",
        "name": name,
        "version": tag,
        "reference": f"{name}:{tag}",
    }


def igor_artifact(registry: str, repository: str, tag: str) -> dict[str, Any]:
    """The `artifact` Igor puts in its docker event (type `docker`)."""
    return {
        "type": "docker",
        "name": repository,
        "version": tag,
        "fileName": f"{repository}:{tag}",
        "reference": f"{registry}/{repository}:{tag}",
        "metadata": {"registry": registry},
        "decorated": False,
    }


def echo_payload(event: StoredEvent) -> dict[str, Any]:
    """The event as Igor posts it to Echo, plus id, time and the docker/image artifact."""
    attributes = {"kind": event.kind}
    if event.previous_digest:
        attributes["previousDigest"] = event.previous_digest
    return {
        "details": {
            "type": "docker",
            "source": SOURCE,
            "created": str(int(event.created_at.timestamp() * 1000)),
            "attributes": attributes,
        },
        "content": {
            "account": event.account,
            "registry": event.registry,
            "repository": event.repository,
            "tag": event.tag,
            "digest": event.digest,
        },
        "artifact": igor_artifact(event.registry, event.repository, event.tag),
        "artifacts": [docker_image_artifact(event.registry, event.repository, event.tag)],
        "eventId": event.id,
        "id": event.id,
        "time": iso_time(event.created_at),
    }


def cloudevent(event: StoredEvent) -> dict[str, Any]:
    """A CloudEvents 1.0 event in structured JSON mode."""
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": f"/regwatch/accounts/{event.account}",
        "type": CLOUDEVENT_TYPES.get(event.kind, f"io.regwatch.docker.{event.kind}"),
        "subject": f"{event.repository}:{event.tag}",
        "time": iso_time(event.created_at),
        "datacontenttype": "application/json",
        "data": {
            "kind": event.kind,
            "account": event.account,
            "registry": event.registry,
            "repository": event.repository,
            "tag": event.tag,
            "digest": event.digest,
            "previousDigest": event.previous_digest,
            "artifact": docker_image_artifact(event.registry, event.repository, event.tag),
        },
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def render(event: StoredEvent, fmt: str) -> tuple[bytes, str]:
    """(body, content type) of the event in the sink's format ("echo" or "cloudevents")."""
    if fmt == "cloudevents":
        return encode(cloudevent(event)), CLOUDEVENTS_CONTENT_TYPE
    return encode(echo_payload(event)), ECHO_CONTENT_TYPE


def signature(body: bytes, secret: Secret) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the body keyed with the secret (GitHub's scheme)."""
    digest = hmac.new(secret.reveal().encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, secret: Secret, header: str | None) -> bool:
    """What a receiver does: recompute and compare in constant time."""
    return header is not None and hmac.compare_digest(signature(body, secret), header)


def request_headers(
    event: StoredEvent,
    *,
    content_type: str,
    body: bytes,
    secret: Secret | None,
    extra: Mapping[str, str],
    attempt: int,
) -> dict[str, str]:
    """The headers of one delivery attempt (the sink's own headers first, ours win)."""
    headers = dict(extra)
    headers.update(
        {
            "Content-Type": content_type,
            IDEMPOTENCY_HEADER: event.id,
            "X-Regwatch-Event-Id": event.id,
            "X-Regwatch-Event": event.kind,
            "X-Regwatch-Attempt": str(attempt),
        }
    )
    if secret:
        headers[SIGNATURE_HEADER] = signature(body, secret)
    return headers
