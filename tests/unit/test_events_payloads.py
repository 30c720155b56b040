"""Echo/Igor-compatible and CloudEvents payloads, signatures and delivery headers."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from regwatch.events.payloads import (
    CLOUDEVENTS_CONTENT_TYPE,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    cloudevent,
    echo_payload,
    iso_time,
    render,
    request_headers,
    signature,
    verify_signature,
)
from regwatch.models import Secret
from regwatch.store.records import StoredEvent

CREATED = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64


def event(**changes: object) -> StoredEvent:
    fields: dict[str, object] = {
        "seq": 7,
        "id": "5f0c7d3e-0000-4000-8000-000000000001",
        "kind": "tag_added",
        "account": "hub",
        "registry": "index.docker.io",
        "repository": "library/nginx",
        "tag": "1.25.3",
        "digest": DIGEST,
        "previous_digest": None,
        "created_at": CREATED,
    }
    fields.update(changes)
    return StoredEvent(**fields)  # type: ignore[arg-type]


def test_echo_payload_is_igors_docker_event_with_id_time_and_docker_image_artifact() -> None:
    payload = echo_payload(event())
    assert payload["details"] == {
        "type": "docker",
        "source": "regwatch",
        "created": str(int(CREATED.timestamp() * 1000)),
        "attributes": {"kind": "tag_added"},
    }
    assert payload["content"] == {
        "account": "hub",
        "registry": "index.docker.io",
        "repository": "library/nginx",
        "tag": "1.25.3",
        "digest": DIGEST,
    }
    assert payload["artifact"] == {
        "type": "docker",
        "name": "library/nginx",
        "version": "1.25.3",
        "fileName": "library/nginx:1.25.3",
        "reference": "index.docker.io/library/nginx:1.25.3",
        "metadata": {"registry": "index.docker.io"},
        "decorated": False,
    }
    assert payload["artifacts"] == [
        {
            "type": "docker/image",
            "name": "index.docker.io/library/nginx",
            "version": "1.25.3",
            "reference": "index.docker.io/library/nginx:1.25.3",
        }
    ]
    assert payload["id"] == payload["eventId"] == event().id
    assert payload["time"] == "2024-05-01T12:30:15.123Z"


def test_a_digest_change_names_the_previous_digest_outside_content() -> None:
    previous = "sha256:" + "b" * 64
    payload = echo_payload(event(kind="digest_changed", previous_digest=previous))
    assert payload["details"]["attributes"] == {
        "kind": "digest_changed",
        "previousDigest": previous,
    }
    assert set(payload["content"]) == {"account", "registry", "repository", "tag", "digest"}


def test_without_a_digest_content_says_null() -> None:
    assert echo_payload(event(digest=None))["content"]["digest"] is None


def test_cloudevent_is_structured_cloudevents_1_0() -> None:
    ce = cloudevent(event())
    assert ce["specversion"] == "1.0"
    assert ce["id"] == event().id
    assert ce["source"] == "/regwatch/accounts/hub"
    assert ce["type"] == "io.regwatch.docker.tag.added"
    assert ce["subject"] == "library/nginx:1.25.3"
    assert ce["time"] == "2024-05-01T12:30:15.123Z"
    assert ce["datacontenttype"] == "application/json"
    assert ce["data"]["digest"] == DIGEST
    assert ce["data"]["artifact"]["type"] == "docker/image"
    assert (
        cloudevent(event(kind="digest_changed"))["type"] == "io.regwatch.docker.tag.digest_changed"
    )


def test_render_gives_the_bytes_and_content_type_of_each_format() -> None:
    body, content_type = render(event(), "echo")
    assert content_type == "application/json"
    assert json.loads(body) == echo_payload(event())
    body, content_type = render(event(), "cloudevents")
    assert content_type == CLOUDEVENTS_CONTENT_TYPE
    assert json.loads(body)["specversion"] == "1.0"


def test_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature(body, Secret("s3cret")) == f"sha256={expected}"
    assert verify_signature(body, Secret("s3cret"), f"sha256={expected}")
    assert not verify_signature(body + b" ", Secret("s3cret"), f"sha256={expected}")
    assert not verify_signature(body, Secret("other"), f"sha256={expected}")
    assert not verify_signature(body, Secret("s3cret"), None)


@given(st.binary(max_size=200), st.text(min_size=1, max_size=30))
def test_a_signature_verifies_only_its_own_body(body: bytes, key: str) -> None:
    secret = Secret(key)
    header = signature(body, secret)
    assert verify_signature(body, secret, header)
    assert not verify_signature(body + b"x", secret, header)


def test_headers_carry_the_idempotency_key_and_signature_and_never_the_secret() -> None:
    body, content_type = render(event(), "echo")
    headers = request_headers(
        event(),
        content_type=content_type,
        body=body,
        secret=Secret("s3cret"),
        extra={"X-Team": "payments", IDEMPOTENCY_HEADER: "overridden"},
        attempt=3,
    )
    assert headers[IDEMPOTENCY_HEADER] == event().id
    assert headers["X-Regwatch-Event"] == "tag_added"
    assert headers["X-Regwatch-Attempt"] == "3"
    assert headers["X-Team"] == "payments"
    assert verify_signature(body, Secret("s3cret"), headers[SIGNATURE_HEADER])
    assert "s3cret" not in json.dumps(headers)
    unsigned = request_headers(
        event(), content_type=content_type, body=body, secret=None, extra={}, attempt=1
    )
    assert SIGNATURE_HEADER not in unsigned


def test_iso_time_is_utc_with_milliseconds() -> None:
    assert iso_time(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2024-01-02T03:04:05.000Z"
    assert iso_time(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05.000Z"
