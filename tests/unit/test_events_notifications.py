"""Parsing push notifications: distribution envelopes, Docker Hub and Harbor webhooks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regwatch.config.model import DockerRegistryAccount
from regwatch.events.inbound import accounts_for, covers
from regwatch.events.notifications import (
    MAX_BODY,
    MAX_CLAIMS,
    NotificationError,
    PushClaim,
    parse_notification,
)

DIGEST = "sha256:" + "c" * 64
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def envelope(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def push(repository: str = "team/app", tag: str | None = "v1", **target: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mediaType": MANIFEST,
        "digest": DIGEST,
        "repository": repository,
        "url": f"http://127.0.0.1:5000/v2/{repository}/manifests/{DIGEST}",
    }
    if tag is not None:
        body["tag"] = tag
    body.update(target)
    return {
        "id": "e1",
        "action": "push",
        "target": body,
        "request": {"host": "127.0.0.1:5000", "method": "PUT"},
        "source": {"addr": "box:5000"},
    }


def test_a_distribution_manifest_push_with_a_tag_is_a_claim() -> None:
    claims = parse_notification(envelope(push()))
    assert claims == [PushClaim("distribution", "team/app", "v1", DIGEST, ("127.0.0.1:5000",))]


def test_blob_pushes_pulls_and_pushes_by_digest_are_not_claims() -> None:
    blob = push(mediaType="application/octet-stream", tag=None)
    pull = {**push(), "action": "pull"}
    by_digest = push(tag=None)
    layer_with_tag = push(mediaType="application/vnd.docker.image.rootfs.diff.tar.gzip")
    assert parse_notification(envelope(blob, pull, by_digest, layer_with_tag)) == []


def test_duplicate_claims_are_kept_once() -> None:
    assert len(parse_notification(envelope(push(), push(), push(tag="v2")))) == 2


def test_the_hosts_come_from_the_request_host_and_the_target_url() -> None:
    event = push(url=f"https://reg.example:443/v2/team/app/manifests/{DIGEST}")
    event["request"]["host"] = "reg.example"
    (claim,) = parse_notification(envelope(event))
    assert claim.hosts == ("reg.example", "reg.example:443")


def test_docker_hub_webhook() -> None:
    body = {
        "callback_url": "https://registry.hub.docker.com/u/acme/app/hook/x/",
        "push_data": {"pushed_at": 1417566161, "pusher": "ci", "tag": "1.2.0"},
        "repository": {"repo_name": "acme/app", "name": "app", "namespace": "acme"},
    }
    (claim,) = parse_notification(json.dumps(body).encode())
    assert (claim.source, claim.repository, claim.tag, claim.digest) == (
        "dockerhub",
        "acme/app",
        "1.2.0",
        None,
    )
    assert "index.docker.io" in claim.hosts
    official = {**body, "repository": {"repo_name": "nginx"}}
    assert parse_notification(json.dumps(official).encode())[0].repository == "library/nginx"


def harbor(kind: str = "PUSH_ARTIFACT") -> dict[str, Any]:
    data = {
        "resources": [
            {"digest": DIGEST, "tag": "v3", "resource_url": "harbor.example.com/proj/app:v3"},
            {"digest": DIGEST, "tag": "", "resource_url": "harbor.example.com/proj/app"},
        ],
        "repository": {"name": "app", "namespace": "proj", "repo_full_name": "proj/app"},
    }
    if kind == "PUSH_ARTIFACT":
        return {"type": kind, "occur_at": 1, "operator": "admin", "event_data": data}
    return {"specversion": "1.0", "type": kind, "id": "x", "data": data}


@pytest.mark.parametrize("kind", ["PUSH_ARTIFACT", "harbor.artifact.pushed"])
def test_harbor_webhooks_default_and_cloudevents(kind: str) -> None:
    (claim,) = parse_notification(json.dumps(harbor(kind)).encode())
    assert claim == PushClaim("harbor", "proj/app", "v3", DIGEST, ("harbor.example.com",))


@pytest.mark.parametrize(
    ("repository", "tag", "digest"),
    [
        ("Team/App", "v1", DIGEST),  # upper case is not a repository name
        ("team/app/", "v1", DIGEST),
        ("../etc", "v1", DIGEST),
        ("team/app", "-v1", DIGEST),
        ("team/app", "v" * 129, DIGEST),
        ("team/app", "v1/../x", DIGEST),
        ("team/app", "v1", "sha256:short"),
        ("team/app", "v1", "not a digest"),
    ],
)
def test_invalid_names_are_dropped(repository: str, tag: str, digest: str) -> None:
    assert parse_notification(envelope(push(repository, tag, digest=digest))) == []


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'"x"', b'{"hello": 1}', b'{"type": "PULL_ARTIFACT"}', b"\xff"],
)
def test_bodies_that_are_no_notification_are_refused(body: bytes) -> None:
    with pytest.raises(NotificationError):
        parse_notification(body)


def test_oversized_bodies_and_claim_floods_are_bounded() -> None:
    with pytest.raises(NotificationError, match="larger than"):
        parse_notification(b" " * (MAX_BODY + 1))
    many = envelope(*(push(tag=f"v{i}") for i in range(MAX_CLAIMS + 50)))
    assert len(parse_notification(many)) == MAX_CLAIMS


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=30))  # fmt: skip
def test_any_json_either_parses_to_valid_claims_or_is_refused(data: Any) -> None:
    for wrapped in (data, {"events": data}, {"push_data": data, "repository": data},
                    {"type": "PUSH_ARTIFACT", "event_data": data}):  # fmt: skip
        try:
            claims = parse_notification(json.dumps(wrapped).encode())
        except NotificationError:
            continue
        assert all(isinstance(c, PushClaim) and c.tag and c.repository for c in claims)


def account(name: str, address: str, **fields: Any) -> DockerRegistryAccount:
    return DockerRegistryAccount.model_validate({"name": name, "address": address, **fields})


def test_claims_belong_to_the_accounts_of_the_registry_they_name() -> None:
    local = account("local", "http://127.0.0.1:5000")
    other = account("other", "http://127.0.0.1:5001")
    hub = account("hub", "index.docker.io")
    claim = PushClaim("distribution", "team/app", "v1", None, ("127.0.0.1:5000",))
    assert accounts_for(claim, [local, other, hub]) == [local]
    hub_claim = PushClaim("dockerhub", "acme/app", "v1", None, ("docker.io", "index.docker.io"))
    assert accounts_for(hub_claim, [local, hub]) == [hub]
    registry_1 = account("hub2", "registry-1.docker.io")
    assert accounts_for(hub_claim, [registry_1]) == [registry_1]


def test_an_account_covers_the_repositories_it_indexes() -> None:
    listed = account("a", "http://r:1", repositories=["team/app"])
    assert covers(listed, "team/app") is True
    assert covers(listed, "team/db") is False
    regex = account("b", "http://r:1", repositoriesRegex="team/.*", skip=["team/old"])
    assert covers(regex, "team/app") is True
    assert covers(regex, "other/app") is False
    assert covers(regex, "team/old") is False
    catalog = account("c", "http://r:1")
    assert covers(catalog, "anything/at-all") is True
    from_file = account("d", "http://r:1", catalogFile="/tmp/catalog.json")
    assert covers(from_file, "team/app") is None  # the store knows
