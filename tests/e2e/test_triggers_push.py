"""Push notifications end to end: the distribution registry's `notifications` point at
`regwatch serve` (scanning disabled: a day-long interval), and a push reaches the webhook
receiver in under 2 s. Docker Hub and Harbor payloads work too; a forged notification for a tag
that does not exist changes nothing; the endpoint wants its token."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from triggers_support import NEVER, SECRET, TOKEN, ServeFactory, clean_env, signed, write_config

from harness import RegistryHandle, free_port, push_images
from harness.webhook_receiver import WebhookReceiver

NOTIFY = "/webhooks/registry"
JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {TOKEN}", **JSON}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    factory = ServeFactory(clean_env(tmp_path), tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


def notifying_registry(factory: Callable[..., RegistryHandle], port: int) -> RegistryHandle:
    endpoint = {
        "name": "regwatch",
        "url": f"http://127.0.0.1:{port}{NOTIFY}",
        "headers": {"Authorization": [f"Bearer {TOKEN}"]},
        "timeout": "2s",
        "threshold": 3,
        "backoff": "100ms",
    }
    return factory(extra_config={"notifications": {"endpoints": [endpoint]}})


def config_for(path: Path, accounts: list[dict[str, Any]], receiver: WebhookReceiver) -> Path:
    write_config(
        path,
        accounts,
        {
            "webhooks": [{"name": "ci", "url": receiver.url, "secret": SECRET}],
            "notifications": {"token": TOKEN},
            "delivery": {"retryBaseSeconds": 0.2, "retryMaxSeconds": 0.5},
        },
    )
    return path


def test_a_push_reaches_the_receiver_in_under_2_s_without_scanning(
    registry_factory: Callable[..., RegistryHandle],
    unique_name: str,
    tmp_path: Path,
    serve: ServeFactory,
    receiver: WebhookReceiver,
) -> None:
    port = free_port()
    registry = notifying_registry(registry_factory, port)
    repo = f"{unique_name}app"
    account = {"name": "local", "address": registry.url, "repositories": [repo],
               "cacheIntervalSeconds": NEVER}  # fmt: skip
    running = serve(config_for(tmp_path / "config", [account], receiver), port=port)
    running.wait_scanned("local")
    scans = running.get("/dockerRegistry/accounts/local/status")["lastFinishedRun"]["runId"]
    latencies = []
    for n in range(5):
        (image,) = push_images(registry, repo, [f"v{n}"])
        pushed = time.monotonic()
        requests = receiver.wait_for(n + 1, timeout=10)
        arrived = requests[n]
        latencies.append(arrived.at - pushed)
        payload = arrived.json()
        assert (payload["content"]["tag"], payload["content"]["digest"]) == (f"v{n}", image.digest)
        assert signed(arrived.body, arrived.header("X-Regwatch-Signature"))
    assert max(latencies) < 2.0, latencies
    time.sleep(1)
    assert len(receiver.requests) == 5  # blob pushes and pull notifications fire nothing
    status = running.get("/dockerRegistry/accounts/local/status")
    assert status["lastFinishedRun"]["runId"] == scans  # no scan ran: the push did it all
    found = running.get("/dockerRegistry/images/find", account="local", repository=repo)
    assert sorted(item["tag"] for item in found) == [f"v{n}" for n in range(5)]
    assert [e["deliveries"][0]["status"] for e in running.events()] == ["delivered"] * 5
    assert running.stop() == 0


def envelope(registry: RegistryHandle, repository: str, tag: str, digest: str) -> bytes:
    target = {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "repository": repository,
        "tag": tag,
        "digest": digest,
        "url": f"{registry.url}/v2/{repository}/manifests/{digest}",
    }
    event = {"id": "x", "action": "push", "target": target, "request": {"host": registry.host}}
    return json.dumps({"events": [event]}).encode()


def test_forged_notifications_change_nothing_and_the_endpoint_wants_its_token(
    registry_anonymous: RegistryHandle,
    unique_name: str,
    tmp_path: Path,
    serve: ServeFactory,
    receiver: WebhookReceiver,
) -> None:
    repo = f"{unique_name}app"
    (real,) = push_images(registry_anonymous, repo, ["v1"])
    account = {"name": "local", "address": registry_anonymous.url, "repositories": [repo],
               "cacheIntervalSeconds": NEVER}  # fmt: skip
    config = config_for(tmp_path / "config", [account], receiver)
    running = serve(config)
    running.wait_scanned("local")
    before = running.get("/dockerRegistry/images/find", account="local", repository=repo)

    forged = envelope(registry_anonymous, repo, "v2", real.digest)  # no such tag
    status, body = running.request("POST", NOTIFY, forged, AUTH)
    assert status == 202
    assert [(r["outcome"], r["detail"]) for r in body["results"]] == [
        ("ignored", "the registry does not have this tag")
    ]
    moved = envelope(registry_anonymous, repo, "v1", "sha256:" + "0" * 64)  # wrong digest
    assert running.request("POST", NOTIFY, moved, AUTH)[1]["results"][0]["outcome"] == "ignored"
    for headers in (JSON, {"Authorization": "Bearer wrong", **JSON}):
        status, body = running.request("POST", NOTIFY, forged, headers)
        assert status == 401
        assert body["message"] == "missing or wrong notification token"
    status, body = running.request("POST", NOTIFY, b"{not json", AUTH)
    assert (status, body["message"]) == (400, "the body is not JSON")
    time.sleep(1)
    assert receiver.requests == []
    assert running.events() == []
    assert running.get("/dockerRegistry/images/find", account="local", repository=repo) == before

    # a real notification, in Harbor's format this time, is applied
    harbor = {
        "type": "PUSH_ARTIFACT",
        "event_data": {
            "repository": {"repo_full_name": repo},
            "resources": [
                {
                    "tag": "v1",
                    "digest": real.digest,
                    "resource_url": f"{registry_anonymous.host}/{repo}:v1",
                }
            ],
        },
    }
    (pushed,) = push_images(registry_anonymous, repo, ["h1"])
    harbor["event_data"]["resources"][0].update(  # type: ignore[index]
        tag="h1", digest=pushed.digest, resource_url=f"{registry_anonymous.host}/{repo}:h1"
    )
    status, body = running.request("POST", NOTIFY, json.dumps(harbor).encode(), AUTH)
    assert (status, body["results"][0]["outcome"]) == (202, "added")
    # and Docker Hub's (no registry host in it: the account is named in the URL)
    (hub,) = push_images(registry_anonymous, repo, ["d1"])
    docker_hub = {"push_data": {"tag": "d1"}, "repository": {"repo_name": repo}}
    status, body = running.request(
        "POST", f"{NOTIFY}?account=local&token={TOKEN}", json.dumps(docker_hub).encode(), JSON
    )
    assert (status, body["results"][0]["outcome"]) == (202, "added")
    requests = receiver.wait_for(2, timeout=10)
    assert sorted(r.json()["content"]["tag"] for r in requests) == ["d1", "h1"]
    assert {r.json()["content"]["digest"] for r in requests} == {pushed.digest, hub.digest}

    # without a configured token the endpoint refuses everything
    config_for(config, [account], receiver)
    text = config.read_text().replace(f'"token": "{TOKEN}"', '"other": 1')
    config.write_text(text)
    deadline = time.monotonic() + 15
    while running.request("POST", NOTIFY, forged, AUTH)[0] != 403:
        assert time.monotonic() < deadline, "the config change was not applied"
        time.sleep(0.2)
    assert running.stop() == 0
